package profile

import (
	"os"
	"testing"
)

func BenchmarkLoadDir(b *testing.B) {
	for b.Loop() {
		if _, err := LoadDir("../../firmware-profiles"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeValidate(b *testing.B) {
	data, err := os.ReadFile("../../firmware-profiles/ga467-usb-bulk.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		p, ps := Decode("f.yaml", data)
		if len(ps) > 0 || len(Validate([]*Profile{p})) > 0 {
			b.Fatal(ps)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	ps, err := LoadDir("../../firmware-profiles")
	if err != nil {
		b.Fatal(err)
	}
	a := Attached{Path: "/dev/ttyUSB0", USB: &USBIDs{0x1a86, 0x7523}}
	for b.Loop() {
		if p, err := Match(ps, a); err != nil || p.ID != "zhengtong-zt-10-ch340" {
			b.Fatal(p, err)
		}
	}
}
