package idcard_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/kioskfleet/kioskfleet/drivers/idcard"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The examples of the reference: find card, and the "card found" reply.
func TestSpecExamples(t *testing.T) {
	if got, want := idcard.AppendCommand(nil, idcard.CmdFindCard, nil), unhex(t, "AA AA AA 96 69 00 03 20 01 22"); !bytes.Equal(got, want) {
		t.Fatalf("find card = % X, want % X", got, want)
	}
	body, err := idcard.DecodeFrame(unhex(t, "AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := idcard.ParseReply(body)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != idcard.StatusCardFound || rep.SW1 != 0 || rep.SW2 != 0 || !bytes.Equal(rep.Data, []byte{0, 0, 0, 0}) {
		t.Fatalf("reply = %+v", rep)
	}
	// Every command of the table, checked against hand-computed frames.
	for c, want := range map[idcard.Command]string{
		idcard.CmdResetSAM:        "AAAAAA9669 0003 10FF EC",
		idcard.CmdSAMStatus:       "AAAAAA9669 0003 11FF ED",
		idcard.CmdSAMID:           "AAAAAA9669 0003 12FF EE",
		idcard.CmdSelectCard:      "AAAAAA9669 0003 2002 21",
		idcard.CmdReadText:        "AAAAAA9669 0003 3001 32",
		idcard.CmdReadFingerprint: "AAAAAA9669 0003 3010 23",
		idcard.CmdReadNewAddress:  "AAAAAA9669 0003 3003 30",
	} {
		if got := idcard.AppendCommand(nil, c, nil); !bytes.Equal(got, unhex(t, want)) {
			t.Errorf("%s = % X, want %s", c, got, want)
		}
	}
}

func TestDecodeFrameRejects(t *testing.T) {
	good := "AAAAAA9669 0008 00009F 00000000 97"
	for _, tc := range []struct {
		name, frame string
		want        error
		msg         string
	}{
		{"bad checksum", "AAAAAA9669 0008 00009F 00000000 98", idcard.ErrChecksum, "CHK 98, computed 97"},
		{"LEN too small", "AAAAAA9669 0001 00", idcard.ErrLength, "LEN 1"},
		{"LEN too large", "AAAAAA9669 FFFF 00", idcard.ErrLength, "LEN 65535"},
		{"truncated body", "AAAAAA9669 0008 00009F 0000", idcard.ErrTruncated, "LEN says 15"},
		{"truncated header", "AAAAAA9669 00", idcard.ErrTruncated, "header needs 7"},
		{"wrong length (longer)", "AAAAAA9669 0007 00009F 00000000 97", idcard.ErrChecksum, ""},
		{"trailing", good + " 00", idcard.ErrTrailing, "1 after a 15-byte frame"},
		{"garbage first", "00 " + good, idcard.ErrPreamble, "1 bytes before"},
		{"empty", "", idcard.ErrTruncated, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := idcard.DecodeFrame(unhex(t, tc.frame))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
	if _, err := idcard.ParseReply([]byte{0, 0}); !errors.Is(err, idcard.ErrTruncated) {
		t.Fatalf("short reply: %v", err)
	}
}

// Split skips line noise before the preamble, including a partial preamble, and waits for more
// bytes when a frame is incomplete.
func TestSplitResync(t *testing.T) {
	frame := unhex(t, "AAAAAA9669 0008 00009F 00000000 97")
	noise := unhex(t, "00 FF AA AA 96 AA AA AA 96 13")
	b := append(append([]byte{}, noise...), frame...)
	start, end, err := idcard.Split(b)
	if err != nil || start != len(noise) || end != len(b) {
		t.Fatalf("Split = %d, %d, %v; want %d, %d", start, end, err, len(noise), len(b))
	}
	for i := range len(b) - 1 {
		start, end, err := idcard.Split(b[:i])
		if end != 0 || err != nil || start > len(noise) {
			t.Fatalf("prefix %d: Split = %d, %d, %v; want need-more", i, start, end, err)
		}
	}
	// A partial preamble at the end is kept.
	if start, end, _ := idcard.Split(unhex(t, "01 02 AA AA")); start != 2 || end != 0 {
		t.Fatalf("partial preamble: start %d end %d", start, end)
	}
}

func TestStatusIsError(t *testing.T) {
	var err error = idcard.StatusNoCard
	if err.Error() != "SAM status 80: no card" {
		t.Fatal(err.Error())
	}
	if !idcard.StatusSAMSelfTest.Fault() || idcard.StatusNoCard.Fault() {
		t.Fatal("Fault() wrong")
	}
	if got := idcard.Status(0x55).Error(); got != "SAM status 55: undefined" {
		t.Fatal(got)
	}
}
