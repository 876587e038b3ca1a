package idcard_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
	"github.com/kioskfleet/kioskfleet/drivers/transport/transporttest"
)

func newUSBRig(t *testing.T, sim *idcardsim.Sim, l idcard.USBLayout) (*idcard.Reader, *transporttest.FakeUSB) {
	t.Helper()
	dev := transporttest.NewFakeUSB(sim.USB(l))
	t.Cleanup(func() { dev.Close() })
	r, err := idcard.NewUSBReader(dev, l, testCfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, dev
}

var layouts = map[string]idcard.USBLayout{
	"split header/body": idcardsim.USBLayout,
	"whole frame":       {HeaderOut: 0x01, HeaderIn: 0x82},
}

func TestUSBReader(t *testing.T) {
	for name, l := range layouts {
		t.Run(name, func(t *testing.T) {
			card := idcardsim.Resident()
			sim := idcardsim.New(card)
			r, dev := newUSBRig(t, sim, l)
			ctx := ctxT(t)
			id, err := r.ReadCard(ctx, idcard.ReadOptions{Fingerprint: true, AppendedAddress: true})
			if err != nil {
				t.Fatal(err)
			}
			if id.Number() != card.Number || !bytes.Equal(id.Fingerprint(), card.Fingerprint) || id.Field(idcard.FieldAppendedAddress) != card.AppendedAddress {
				t.Fatal("card data differs")
			}
			wantOuts := 4
			if l.BodyOut != 0 {
				wantOuts = 8 // header and body per command
			}
			if dev.BulkOuts() != wantOuts {
				t.Fatalf("%d bulk OUT transfers, want %d", dev.BulkOuts(), wantOuts)
			}

			for _, tc := range []struct {
				f    idcardsim.Faults
				want error
			}{
				{idcardsim.Faults{NoCard: true}, idcard.StatusNoCard},
				{idcardsim.Faults{Misread: true}, idcard.ErrMisread},
				{idcardsim.Faults{BadChecksum: true}, idcard.ErrChecksum},
				{idcardsim.Faults{SAMFault: true}, idcard.StatusSAMSelfTest},
				{idcardsim.Faults{Delay: 1500 * time.Millisecond}, transport.ErrTimeout},
			} {
				sim.SetFaults(tc.f)
				if _, err := r.ReadCard(ctx, idcard.ReadOptions{}); !errors.Is(err, tc.want) {
					t.Fatalf("faults %+v: %v, want %v", tc.f, err, tc.want)
				}
			}
			sim.SetFaults(idcardsim.Faults{})
			eventually(t, func() error { _, err := r.ReadCard(ctx, idcard.ReadOptions{}); return err })

			dev.Unplug()
			start := time.Now()
			if err := r.FindCard(ctx); !errors.Is(err, transport.ErrClosed) || time.Since(start) > time.Second {
				t.Fatalf("after unplug: %v after %v", err, time.Since(start))
			}
		})
	}
}

func TestUSBLayoutValidated(t *testing.T) {
	for _, l := range []idcard.USBLayout{
		{},
		{HeaderOut: 0x81, HeaderIn: 0x81},
		{HeaderOut: 0x02, HeaderIn: 0x01},
		{HeaderOut: 0x02, BodyOut: 0x86, HeaderIn: 0x81},
	} {
		if _, err := idcard.NewUSBReader(transporttest.NewFakeUSB(nil), l, idcard.Config{}); err == nil {
			t.Errorf("layout %+v accepted", l)
		}
	}
}
