package qrcode

import (
	"errors"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Known Reed-Solomon codewords: the "HELLO WORLD" 1-M example of ISO/IEC 18004 Annex I (data
// codewords of the alphanumeric encoding and their 10 EC codewords).
func TestReedSolomon(t *testing.T) {
	data := []byte{32, 91, 11, 120, 209, 114, 220, 77, 67, 64, 236, 17, 236, 17, 236, 17}
	want := []byte{196, 35, 39, 119, 235, 215, 231, 226, 93, 23}
	got := remainder(data, generator(10))
	if string(got) != string(want) {
		t.Fatalf("EC codewords %v, want %v", got, want)
	}
}

// Codes of every version this package makes are read back by a real QR reader (zbarimg).
func TestDecodesWithZbar(t *testing.T) {
	zbar, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Skip("zbarimg not installed (Debian package zbar-tools): codes not decoded")
	}
	dir := t.TempDir()
	for _, s := range []string{
		"A",
		"http://127.0.0.1:8080/oidc/device?user_code=BDWP-HQPK",
		"https://hub.example.gov.cn/oidc/device?user_code=WDJB-MJHT&kiosk=k-7f3a9c21",
		strings.Repeat("政务服务", 9),
		strings.Repeat("x", 150),
		strings.Repeat("0123456789", 21) + "abc",
	} {
		c, err := Encode([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "code.png")
		w, _ := os.Create(f)
		if err := png.Encode(w, c.Image(4)); err != nil {
			t.Fatal(err)
		}
		w.Close()
		out, err := exec.Command(zbar, "--raw", "-q", "-Sbinary", f).Output()
		if err != nil || string(out) != s {
			t.Errorf("version %d mask %d (%d bytes): zbarimg read %q, %v", c.Version, c.Mask, len(s), out, err)
		}
	}
	if _, err := Encode(make([]byte, 214)); !errors.Is(err, ErrTooLong) {
		t.Errorf("214 bytes: %v", err)
	}
}

func TestSVG(t *testing.T) {
	c, err := Encode([]byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	svg := c.SVG()
	if c.Version != 1 || c.Size != 21 || !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, `viewBox="0 0 29 29"`) {
		t.Fatalf("version %d size %d: %s", c.Version, c.Size, svg[:80])
	}
}

func FuzzEncode(f *testing.F) {
	f.Add([]byte("http://127.0.0.1/oidc/device?user_code=ABCD-EFGH"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Encode(b)
		if err != nil {
			if len(b) <= 213 {
				t.Fatalf("%d bytes refused: %v", len(b), err)
			}
			return
		}
		if c.Size != 17+4*c.Version || len(c.dark) != c.Size*c.Size {
			t.Fatalf("version %d size %d", c.Version, c.Size)
		}
	})
}
