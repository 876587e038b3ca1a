package profile

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, file string, err error) {
	t.Helper()
	var got string
	if err != nil {
		var ps Problems
		if !errors.As(err, &ps) {
			t.Fatalf("error is %T, not Problems: %v", err, err)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("errors.Is(err, ErrInvalid) is false")
		}
		got = ps.Error() + "\n"
	}
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, rerr := os.ReadFile(file)
	if rerr != nil {
		t.Fatalf("%v (run go test -update to create it)", rerr)
	}
	if got != string(want) {
		t.Errorf("problems differ from %s\ngot:\n%s\nwant:\n%s", file, got, want)
	}
}

func TestGoldenInvalid(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no test files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := LoadFile(f)
			if err == nil {
				t.Fatal("invalid profile loaded without error")
			}
			golden(t, strings.TrimSuffix(f, ".yaml")+".golden", err)
		})
	}
}

func TestGoldenInvalidSet(t *testing.T) {
	ps, err := LoadDir("testdata/invalid-set")
	if err == nil || ps != nil {
		t.Fatalf("LoadDir = %d profiles, %v; want nil and problems", len(ps), err)
	}
	golden(t, "testdata/invalid-set.golden", err)
}

func TestValid(t *testing.T) {
	for _, dir := range []string{"testdata/valid", "../../firmware-profiles"} {
		ps, err := LoadDir(dir)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if len(ps) == 0 {
			t.Fatalf("%s: no profiles", dir)
		}
	}
}

// The shipped profiles cover every model the brief requires.
func TestShippedProfiles(t *testing.T) {
	ps, err := LoadDir("../../firmware-profiles")
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*Profile{}
	for _, p := range ps {
		byID[p.ID] = p
	}
	want := []struct {
		id    string
		check func(p *Profile) bool
	}{
		{"huaxin-hx-r200-serial", func(p *Profile) bool { return p.Transport.Baud == 115200 && p.Protocol == "ga467" }},
		{"zhengtong-zt-10-ch340", func(p *Profile) bool { return p.Transport.Baud == 9600 && p.Match.USB[0].VID == "1a86" }},
		{"jinghe-jh-u5-usb", func(p *Profile) bool {
			return p.Transport.Kind == TransportUSBBulk && p.Transport.Endpoints.HeaderOut == 0x02 && p.Transport.Endpoints.BodyIn == 0x85
		}},
		{"yunhe-yt-80-usb", func(p *Profile) bool { return p.Transport.Kind == TransportUSBPrinter && p.Printer.PaperWidthMM == 80 }},
		{"hengtai-kp80-serial", func(p *Profile) bool { return p.Transport.Kind == TransportSerial && p.Driver == DriverESCPOS }},
		{"generic-ipp-everywhere-a4", func(p *Profile) bool { return p.Printer.Media == "iso_a4_210x297mm" }},
		{"saoma-qr20-serial", func(p *Profile) bool { return p.Scanner.Suffix == "cr" }},
		{"sane-generic-flatbed", func(p *Profile) bool { return p.Transport.Kind == TransportSANE }},
	}
	for _, w := range want {
		p := byID[w.id]
		if p == nil {
			t.Errorf("profile %s missing", w.id)
			continue
		}
		if !w.check(p) {
			t.Errorf("profile %s: unexpected settings %+v", w.id, p)
		}
	}
	if d := byID["huaxin-hx-r200-serial"].Quirks.ReplyTimeout; d != 3*time.Second {
		t.Errorf("replyTimeout = %v", d)
	}
	// Names are shown on the console and in alerts as they are: that they are invented is said
	// in the comments and the docs, not in the names.
	for _, p := range ps {
		if name := p.Manufacturer + " " + p.Model; strings.ContainsAny(name, "()") || strings.Contains(strings.ToLower(name), "made") {
			t.Errorf("profile %s: display name %q", p.ID, name)
		}
	}
}

func TestMatch(t *testing.T) {
	ps, err := LoadDir("../../firmware-profiles")
	if err != nil {
		t.Fatal(err)
	}
	ch340 := &USBIDs{0x1a86, 0x7523}
	cases := []struct {
		name string
		a    Attached
		want string // profile id, or "" for an error
		err  error
	}{
		{"ch340 bridge beats plain glob", Attached{Path: "/dev/ttyUSB0", USB: ch340}, "zhengtong-zt-10-ch340", nil},
		{"by-id path", Attached{Path: "/dev/serial/by-id/usb-Saoma_QR-20_0001-if00"}, "saoma-qr20-serial", nil},
		{"usb bulk reader", Attached{USB: &USBIDs{0x0400, 0xc35a}}, "jinghe-jh-u5-usb", nil},
		{"usb printer", Attached{USB: &USBIDs{0x0fe6, 0x811e}}, "yunhe-yt-80-usb", nil},
		{"unknown usb", Attached{USB: &USBIDs{0x1234, 0x5678}}, "", ErrNoMatch},
		{"ipp", Attached{URI: "ipp://127.0.0.1:8631/ipp/print"}, "generic-ipp-everywhere-a4", nil},
		{"sane test", Attached{SANE: "test:0"}, "sane-generic-flatbed", nil},
		{"ttyS ambiguous", Attached{Path: "/dev/ttyS0"}, "", &AmbiguousError{}},
		{"ttyS with class", Attached{Path: "/dev/ttyS0", Class: ClassReceiptPrinter}, "hengtai-kp80-serial", nil},
		{"acm with class", Attached{Path: "/dev/ttyACM0", Class: ClassIDReader}, "huaxin-hx-r200-serial", nil},
		{"bridge of another vendor", Attached{Path: "/dev/ttyUSB0", USB: &USBIDs{0x10c4, 0xea60}}, "", ErrNoMatch},
		{"configured profile", Attached{Path: "/dev/pts/7", Profile: "saoma-qr20-serial"}, "saoma-qr20-serial", nil},
		{"configured unknown", Attached{Path: "/dev/pts/7", Profile: "nope"}, "", ErrUnknownProfile},
		{"pty without profile", Attached{Path: "/dev/pts/7"}, "", ErrNoMatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Match(ps, c.a)
			if c.want != "" {
				if err != nil || p.ID != c.want {
					t.Fatalf("Match = %v, %v; want %s", p, err, c.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Match = %s, want error", p.ID)
			}
			var amb *AmbiguousError
			if _, ok := c.err.(*AmbiguousError); ok {
				if !errors.As(err, &amb) || len(amb.Candidates) != 2 {
					t.Fatalf("err = %v, want AmbiguousError with 2 candidates", err)
				}
				return
			}
			if !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, pat := range []string{"testdata/*/*.yaml", "../../firmware-profiles/*.yaml"} {
		files, _ := filepath.Glob(pat)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("id: [\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, ps := Decode("f.yaml", data)
		for _, q := range ps {
			if q.File != "f.yaml" || q.Msg == "" || q.Line < 0 {
				t.Fatalf("bad problem %+v", q)
			}
		}
		if p == nil {
			if len(ps) == 0 {
				t.Fatal("nil profile without a problem")
			}
			return
		}
		for _, q := range Validate([]*Profile{p}) {
			if q.Msg == "" || q.Line < 1 {
				t.Fatalf("bad validation problem %+v", q)
			}
		}
	})
}
