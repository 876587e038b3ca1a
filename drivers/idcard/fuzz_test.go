package idcard_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
)

// FuzzFrame: Split and DecodeFrame never panic, never return bounds outside the input, and a frame
// they accept re-encodes to the same bytes.
func FuzzFrame(f *testing.F) {
	sim := idcardsim.New(idcardsim.Resident())
	for _, s := range [][]byte{
		{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x20, 0x01, 0x22},
		{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x08, 0x00, 0x00, 0x9F, 0, 0, 0, 0, 0x97},
		{0x00, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x08, 0x00},
		{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0xFF, 0xFF},
		sim.Reply([]byte{0x30, 0x01}),
		sim.Reply([]byte{0x12, 0xFF}),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		start, end, err := idcard.Split(b)
		if start < 0 || start > len(b) || end < 0 || end > len(b) || (end != 0 && end <= start) {
			t.Fatalf("Split bounds %d, %d for %d bytes", start, end, len(b))
		}
		if err != nil && !errors.Is(err, idcard.ErrChecksum) && !errors.Is(err, idcard.ErrLength) {
			t.Fatalf("unexpected error %v", err)
		}
		body, err := idcard.DecodeFrame(b)
		if err != nil {
			return
		}
		if again := idcard.AppendFrame(nil, body); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded % X, was % X", again, b)
		}
		if rep, err := idcard.ParseReply(body); err == nil {
			if id, err := idcard.ParseRead(rep.Data, rep.SW1&1 == 1); err == nil {
				id.Wipe()
			}
		}
	})
}

// FuzzDecodeText: any 256 bytes decode or fail cleanly; a decoded identity formats without
// panicking and its number passes the check it was accepted with.
func FuzzDecodeText(f *testing.F) {
	for _, c := range []*idcardsim.Card{idcardsim.Resident(), idcardsim.HKMOTW(), idcardsim.Foreigner2017(), idcardsim.Foreigner2023()} {
		f.Add(c.TextBlock())
	}
	f.Add(make([]byte, 256))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := idcard.DecodeText(b)
		if err != nil {
			return
		}
		_ = id.String()
		n := id.Number()
		if id.Type() != idcard.Foreigner2017 && idcard.CheckChar(n[:17]) != n[17] {
			t.Fatalf("accepted a number failing its check")
		}
		for f := idcard.FieldName; f <= idcard.FieldAppendedAddress; f++ {
			_ = id.Field(f)
		}
		id.Wipe()
	})
}

// FuzzParseRead: the data of a read reply (lengths, text, photo, fingerprint) is accepted only when
// its lengths add up, and never panics.
func FuzzParseRead(f *testing.F) {
	sim := idcardsim.New(idcardsim.Resident())
	for _, c := range []byte{0x01, 0x10} {
		body, _ := idcard.DecodeFrame(sim.Reply([]byte{0x30, c}))
		f.Add(body[3:], c == 0x10)
	}
	f.Add([]byte{1, 0, 0, 0}, false)
	f.Add([]byte{1, 0, 4, 0, 0xff, 0xff}, true)
	f.Fuzz(func(t *testing.T, d []byte, fp bool) {
		id, err := idcard.ParseRead(d, fp)
		if err != nil {
			return
		}
		want := len(d) - 4 - idcard.TextLen
		if fp {
			want -= 2
		}
		if got := len(id.Photo()) + len(id.Fingerprint()); got != want {
			t.Fatalf("photo+fingerprint %d bytes, data had %d", got, want)
		}
		id.Wipe()
	})
}
