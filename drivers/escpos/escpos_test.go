package escpos_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/drivers/escpos"
	"github.com/kioskfleet/kioskfleet/drivers/escpos/escpossim"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// open starts a simulated printer on a pty and opens it like a real serial port.
func open(t *testing.T, opt escpos.Options) (*escpos.Device, *escpossim.Pty) {
	t.Helper()
	sim, err := escpossim.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	port, err := transport.Serial{}.OpenSerial(sim.Path, transport.SerialMode{Baud: 115200})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { port.Close() })
	return escpos.New(&escpos.SerialLink{Port: port}, quiet(), opt), sim
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestPrintReceiptHappyPath(t *testing.T) {
	d, sim := open(t, escpos.Options{})
	c := ctx(t)
	st, err := d.Status(c)
	if err != nil || !st.Ready() || st.String() != "ready" {
		t.Fatalf("status = %v, %v", st, err)
	}
	job := escpos.NewJob().Line("办事指南 Receipt No. 42").Line("姓名: 张*").QR([]byte("https://gov.example/c/42"), 6, escpos.QRLevelM).Feed(3).Cut(false)
	if err := d.Print(c, job); err != nil {
		t.Fatal(err)
	}
	want := "办事指南 Receipt No. 42\n姓名: 张*\n\n\n\n"
	waitFor(t, func() bool { return sim.Cuts() == 1 })
	if got := sim.Text(); got != want {
		t.Errorf("printed %q, want %q", got, want)
	}
	if q := sim.QRCodes(); len(q) != 1 || q[0] != "https://gov.example/c/42" {
		t.Errorf("QR codes %q", q)
	}
	if err := d.PrintQR(c, []byte("second")); err != nil {
		t.Fatal(err)
	}
	if err := d.Cut(c, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return sim.Cuts() == 2 && len(sim.QRCodes()) == 2 })
	if sim.Unknown() != 0 || d.Dropped() != 0 {
		t.Errorf("unknown commands %d, dropped %d", sim.Unknown(), d.Dropped())
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFaultsRefuseJobBeforeSending(t *testing.T) {
	cases := []struct {
		fault escpossim.Fault
		want  error
		check func(escpos.Status) bool
	}{
		{escpossim.PaperOut, escpos.ErrPaperOut, func(s escpos.Status) bool { return s.PaperOut && s.Offline }},
		{escpossim.CoverOpen, escpos.ErrCoverOpen, func(s escpos.Status) bool { return s.CoverOpen && s.Offline }},
		{escpossim.Offline, escpos.ErrOffline, func(s escpos.Status) bool { return s.Offline && !s.CoverOpen }},
	}
	for _, tc := range cases {
		t.Run(tc.want.Error(), func(t *testing.T) {
			d, sim := open(t, escpos.Options{})
			sim.SetFault(tc.fault, true)
			c := ctx(t)
			st, err := d.Status(c)
			if err != nil || !tc.check(st) {
				t.Fatalf("status = %v, %v", st, err)
			}
			err = d.Print(c, escpos.NewJob().Line("must not print"))
			var se *escpos.StatusError
			if !errors.Is(err, tc.want) || !errors.As(err, &se) {
				t.Fatalf("print error = %v, want %v", err, tc.want)
			}
			// Status round trip is synchronous; give the sim a moment for any stray bytes.
			if _, err := d.Status(c); err != nil {
				t.Fatal(err)
			}
			if sim.Text() != "" || sim.Discarded() != 0 {
				t.Errorf("job reached printer: text %q, discarded %d", sim.Text(), sim.Discarded())
			}
			sim.SetFault(tc.fault, false)
			if err := d.Print(c, escpos.NewJob().Line("ok")); err != nil {
				t.Fatalf("after recovery: %v", err)
			}
			waitFor(t, func() bool { return sim.Text() == "ok\n" })
		})
	}
}

func TestPaperNearEndStillPrints(t *testing.T) {
	d, sim := open(t, escpos.Options{})
	sim.SetFault(escpossim.PaperNearEnd, true)
	c := ctx(t)
	st, err := d.Status(c)
	if err != nil || !st.PaperNearEnd || st.PaperOut || !st.Ready() {
		t.Fatalf("status = %v, %v", st, err)
	}
	if err := d.Print(c, escpos.NewJob().Line("near end")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return sim.Text() == "near end\n" })
}

func TestCutterErrorAndASB(t *testing.T) {
	d, sim := open(t, escpos.Options{})
	c := ctx(t)
	if err := d.EnableASB(c); err != nil {
		t.Fatal(err)
	}
	first, err := d.NextASB(c)
	if err != nil || !first.Ready() {
		t.Fatalf("first ASB = %v, %v", first, err)
	}
	sim.SetFault(escpossim.CutterError, true)
	if err := d.Cut(c, false); err != nil {
		t.Fatalf("cut (printer was ready): %v", err)
	}
	st, err := d.NextASB(c)
	if err != nil || !st.CutterError || !st.Offline {
		t.Fatalf("ASB after failed cut = %v, %v", st, err)
	}
	if err := d.Print(c, escpos.NewJob().Line("x")); !errors.Is(err, escpos.ErrCutter) {
		t.Fatalf("print error = %v, want ErrCutter", err)
	}
	sim.SetFault(escpossim.CoverOpen, true)
	st, err = d.NextASB(c)
	if err != nil || !st.CoverOpen {
		t.Fatalf("ASB after cover open = %v, %v", st, err)
	}
}

func TestSlowPrinterTimesOut(t *testing.T) {
	d, sim := open(t, escpos.Options{StatusTimeout: 200 * time.Millisecond})
	sim.SetFault(escpossim.Slow, true)
	start := time.Now()
	_, err := d.Status(ctx(t))
	if !errors.Is(err, transport.ErrTimeout) {
		t.Fatalf("status error = %v, want timeout", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("status took %v despite a 200ms deadline", el)
	}
	err = d.Print(ctx(t), escpos.NewJob().Line("x"))
	if !errors.Is(err, transport.ErrTimeout) {
		t.Fatalf("print error = %v, want timeout", err)
	}
}

func TestUnplug(t *testing.T) {
	d, sim := open(t, escpos.Options{StatusTimeout: 500 * time.Millisecond})
	sim.Unplug()
	_, err := d.Status(ctx(t))
	if !errors.Is(err, transport.ErrClosed) && !errors.Is(err, transport.ErrTimeout) {
		t.Fatalf("status after unplug = %v", err)
	}
	if err := d.Print(ctx(t), escpos.NewJob().Line("x")); err == nil {
		t.Fatal("print after unplug succeeded")
	}
}

func TestNoRealtimeStatusQuirk(t *testing.T) {
	d, sim := open(t, escpos.Options{NoRealtimeStatus: true})
	if _, err := d.Status(ctx(t)); !errors.Is(err, escpos.ErrNoStatus) {
		t.Fatalf("status = %v", err)
	}
	if err := d.Print(ctx(t), escpos.NewJob().Line("blind")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return sim.Text() == "blind\n" })
}

func TestJobValidation(t *testing.T) {
	for name, j := range map[string]*escpos.Job{
		"control char": escpos.NewJob().Text("a\x1b@b"),
		"empty qr":     escpos.NewJob().QR(nil, 4, escpos.QRLevelL),
		"big qr":       escpos.NewJob().QR(bytes.Repeat([]byte{'a'}, escpos.MaxQRData+1), 4, escpos.QRLevelL),
		"module":       escpos.NewJob().QR([]byte("a"), 17, escpos.QRLevelL),
		"level":        escpos.NewJob().QR([]byte("a"), 4, 7),
	} {
		if _, err := j.Bytes(); !errors.Is(err, escpos.ErrBadCommand) {
			t.Errorf("%s: error %v, want ErrBadCommand", name, err)
		}
	}
	b, err := escpos.NewJob().Text("中").Bytes()
	if err != nil || !bytes.Equal(b, []byte{0x1B, '@', 0x1C, '&', 0xD6, 0xD0}) {
		t.Errorf("GB18030 job = % x, %v", b, err)
	}
}

func TestStatusParsing(t *testing.T) {
	var s escpos.Status
	if err := escpos.ApplyRealtime(&s, escpos.StatusPaper, 0x12|0x0C|0x60); err != nil || !s.PaperOut || !s.PaperNearEnd {
		t.Fatalf("paper: %v %v", s, err)
	}
	if err := escpos.ApplyRealtime(&s, escpos.StatusPrinter, 0xFF); !errors.Is(err, escpos.ErrBadFrame) {
		t.Fatalf("bad fixed bits accepted: %v", err)
	}
	if !strings.Contains(escpos.ApplyRealtime(&s, escpos.StatusPrinter, 0x00).Error(), "00") {
		t.Error("frame error does not show the byte")
	}
	if _, err := escpos.ParseASB([]byte{0x10, 0, 0}); !errors.Is(err, escpos.ErrBadFrame) {
		t.Fatalf("short ASB accepted: %v", err)
	}
	all := escpos.Status{DrawerOpen: true, Offline: true, CoverOpen: true, FeedButton: true, CutterError: true,
		Unrecoverable: true, AutoRecoverable: true, Recoverable: true, PaperNearEnd: true, PaperOut: true, Error: true}
	m := escpos.EncodeASB(all)
	got, err := escpos.ParseASB(m[:])
	if err != nil || got != all {
		t.Fatalf("ASB round trip: %v, %v", got, err)
	}
}

func BenchmarkParseASB(b *testing.B) {
	m := []byte{0x18, 0x08, 0x0C, 0x00}
	for b.Loop() {
		if _, err := escpos.ParseASB(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApplyRealtime(b *testing.B) {
	var s escpos.Status
	for b.Loop() {
		for k := escpos.StatusPrinter; k <= escpos.StatusPaper; k++ {
			if err := escpos.ApplyRealtime(&s, k, 0x12); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkStatusOverPty is one full status read (DLE EOT 1..4) through a pseudo-terminal.
func BenchmarkStatusOverPty(b *testing.B) {
	sim, err := escpossim.NewPty()
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	port, err := transport.Serial{}.OpenSerial(sim.Path, transport.SerialMode{})
	if err != nil {
		b.Fatal(err)
	}
	defer port.Close()
	d := escpos.New(&escpos.SerialLink{Port: port}, quiet(), escpos.Options{})
	ctx := context.Background()
	for b.Loop() {
		if _, err := d.Status(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
