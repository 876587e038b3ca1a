package escpossim_test

import (
	"testing"

	"github.com/kioskfleet/kioskfleet/drivers/escpos"
	"github.com/kioskfleet/kioskfleet/drivers/escpos/escpossim"
)

// FuzzSim: any host byte stream, split anywhere, is consumed without panic, and every reply byte
// is a valid real-time status or part of an ASB message.
func FuzzSim(f *testing.F) {
	job, _ := escpos.NewJob().Line("收据 1").QR([]byte("x"), 4, escpos.QRLevelL).Cut(true).Bytes()
	f.Add(job, uint8(3))
	f.Add([]byte{0x10, 0x04, 0x01, 0x1D, 0x61, 0x0F, 0x1D, 0x56, 0x41}, uint8(1))
	f.Add([]byte{0x1D, 0x28, 0x6B, 0xFF, 0xFF, 0x31}, uint8(2))
	f.Add([]byte{0x1B, 0x1B, 0x1C, 0x10, 0x10}, uint8(0))
	f.Fuzz(func(t *testing.T, in []byte, split uint8) {
		var out []byte
		s := escpossim.New(func(b []byte) { out = append(out, b...) })
		s.SetFault(escpossim.CutterError, split%2 == 0)
		n := int(split)%8 + 1
		for len(in) > 0 {
			k := min(n, len(in))
			s.Write(in[:k])
			in = in[k:]
		}
		for i := 0; i < len(out); {
			switch {
			case escpos.IsRealtimeByte(out[i]):
				i++
			case escpos.IsASBHeader(out[i]) && i+4 <= len(out):
				if _, err := escpos.ParseASB(out[i : i+4]); err != nil {
					t.Fatalf("bad ASB from sim: %v", err)
				}
				i += 4
			default:
				t.Fatalf("sim sent % x", out)
			}
		}
	})
}
