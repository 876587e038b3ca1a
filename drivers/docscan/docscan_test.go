package docscan_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/drivers/docscan"
	"github.com/kioskfleet/kioskfleet/drivers/docscan/docscantest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestSANEScan(t *testing.T) {
	s := &docscan.SANE{Device: "test", ConfigDir: docscantest.SANEConfig(t)}
	for _, tc := range []struct {
		opt  docscan.Options
		w, h int
	}{
		{docscan.Options{Resolution: 100, Mode: docscan.ModeColor}, 314, 393},
		{docscan.Options{Resolution: 50, Mode: docscan.ModeGray}, 157, 196},
	} {
		pages, err := s.Scan(ctx(t), tc.opt)
		if err != nil {
			t.Fatal(err)
		}
		p := pages[0]
		if len(pages) != 1 || p.Format != "image/png" || p.Resolution != tc.opt.Resolution || p.Mode != tc.opt.Mode {
			t.Fatalf("page %+v", p)
		}
		// The test backend scans a fixed area (about 80 x 100 mm): pixels follow the resolution.
		if p.Width < tc.w-2 || p.Width > tc.w+2 || p.Height < tc.h-2 || p.Height > tc.h+2 {
			t.Errorf("%d dpi: %dx%d pixels, want about %dx%d", tc.opt.Resolution, p.Width, p.Height, tc.w, tc.h)
		}
	}
}

func TestSANEFaults(t *testing.T) {
	dir := docscantest.SANEConfig(t)
	for status, want := range map[string]error{
		"SANE_STATUS_JAMMED":      docscan.ErrJammed,
		"SANE_STATUS_COVER_OPEN":  docscan.ErrCoverOpen,
		"SANE_STATUS_NO_DOCS":     docscan.ErrNoDocs,
		"SANE_STATUS_DEVICE_BUSY": docscan.ErrBusy,
		"SANE_STATUS_IO_ERROR":    docscan.SANEIOError,
	} {
		s := &docscan.SANE{Device: "test", ConfigDir: dir, Extra: []string{"--enable-test-options", "--read-return-value", status}}
		_, err := s.Scan(ctx(t), docscan.Options{Resolution: 50})
		var ss docscan.SANEStatus
		if !errors.Is(err, want) || !errors.As(err, &ss) {
			t.Errorf("%s: %v, want %v", status, err, want)
		}
	}
	s := &docscan.SANE{Device: "nosuch", ConfigDir: dir}
	if _, err := s.Scan(ctx(t), docscan.Options{}); !errors.Is(err, docscan.ErrNoDevice) {
		t.Errorf("missing device: %v", err)
	}
	s = &docscan.SANE{Device: "test", ConfigDir: dir}
	if _, err := s.Scan(ctx(t), docscan.Options{Mode: docscan.ModeLineart}); !errors.Is(err, docscan.ErrOptions) {
		t.Errorf("lineart on test backend: %v", err)
	}
	if _, err := s.Scan(ctx(t), docscan.Options{Resolution: -3}); !errors.Is(err, docscan.ErrOptions) {
		t.Errorf("bad resolution: %v", err)
	}
	// A scan that outlives its deadline is killed, not waited for.
	s = &docscan.SANE{Device: "test", ConfigDir: dir, Timeout: time.Millisecond}
	if _, err := s.Scan(ctx(t), docscan.Options{Resolution: 600}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: %v", err)
	}
}

func TestSANEToPDF(t *testing.T) {
	s := &docscan.SANE{Device: "test", ConfigDir: docscantest.SANEConfig(t)}
	var pages []docscan.Page
	for range 2 {
		p, err := s.Scan(ctx(t), docscan.Options{Resolution: 75})
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, p...)
	}
	pdf, err := docscan.PDF(pages)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) || bytes.Count(pdf, []byte("/Type /Page\n")) != 2 {
		t.Errorf("pdf: %d bytes, %d pages", len(pdf), bytes.Count(pdf, []byte("/Type /Page\n")))
	}
	if _, err := docscan.PDF([]docscan.Page{{Data: []byte("not png"), Width: 1, Height: 1, Resolution: 1}}); err == nil {
		t.Error("PDF of garbage succeeded")
	}
}

func escl(t *testing.T) (*docscan.ESCL, *docscantest.ESCL) {
	srv := docscantest.NewESCL(t)
	return &docscan.ESCL{Base: srv.Base, HTTP: &http.Client{Timeout: 5 * time.Second}, PollInterval: 10 * time.Millisecond}, srv
}

func TestESCLPlaten(t *testing.T) {
	c, srv := escl(t)
	caps, err := c.Capabilities(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if caps.MakeAndModel != "Kioskfleet eSCL Simulator" || caps.Platen == nil || caps.ADF == nil ||
		len(caps.Platen.Resolutions) != 3 || len(caps.Platen.Modes) != 2 {
		t.Fatalf("capabilities %+v %+v", caps, caps.Platen)
	}
	pages, err := c.Scan(ctx(t), docscan.Options{Resolution: 150, Mode: docscan.ModeGray})
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 1 || pages[0].Width != 150 || pages[0].Height != 225 || pages[0].Format != "image/png" {
		t.Fatalf("pages %+v", pages)
	}
	got := srv.Received()
	if len(got) != 1 || got[0].ColorMode != "Grayscale8" || got[0].XResolution != 150 || got[0].InputSource != "Platen" || got[0].Format != "image/png" {
		t.Errorf("settings sent %+v", got)
	}
	if _, err := c.Scan(ctx(t), docscan.Options{Resolution: 600}); !errors.Is(err, docscan.ErrOptions) {
		t.Errorf("600 dpi: %v", err)
	}
	if _, err := c.Scan(ctx(t), docscan.Options{Mode: docscan.ModeLineart}); !errors.Is(err, docscan.ErrOptions) {
		t.Errorf("lineart: %v", err)
	}
}

func TestESCLFeederAndPDF(t *testing.T) {
	c, srv := escl(t)
	srv.SetFault(docscantest.WarmUp, true)
	pages, err := c.Scan(ctx(t), docscan.Options{Resolution: 75, ADF: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 3 {
		t.Fatalf("%d pages from a feeder of 3", len(pages))
	}
	pdf, err := docscan.PDF(pages)
	if err != nil || bytes.Count(pdf, []byte("/Type /Page\n")) != 3 {
		t.Fatalf("pdf: %v", err)
	}
}

func TestESCLFaults(t *testing.T) {
	c, srv := escl(t)
	srv.SetFault(docscantest.ADFJam, true)
	if _, err := c.Scan(ctx(t), docscan.Options{ADF: true, Resolution: 75}); !errors.Is(err, docscan.ErrJammed) {
		t.Fatalf("jam: %v", err)
	}
	if srv.Deleted() != 1 {
		t.Errorf("jammed job not deleted (%d)", srv.Deleted())
	}
	c, srv = escl(t)
	srv.SetFault(docscantest.ADFEmpty, true)
	if _, err := c.Scan(ctx(t), docscan.Options{ADF: true}); !errors.Is(err, docscan.ErrNoDocs) {
		t.Fatalf("empty feeder: %v", err)
	}
	srv.SetFault(docscantest.ADFEmpty, false)
	srv.SetFault(docscantest.Busy, true)
	if _, err := c.Scan(ctx(t), docscan.Options{}); !errors.Is(err, docscan.ErrBusy) {
		t.Fatalf("busy: %v", err)
	}
	if len(srv.Received()) != 0 {
		t.Errorf("a job was posted to a busy scanner")
	}
	srv.Close()
	if _, err := c.Scan(ctx(t), docscan.Options{}); err == nil {
		t.Fatal("scan of a stopped server succeeded")
	}
}

func TestESCLParse(t *testing.T) {
	for name, b := range map[string]string{
		"not xml":   "<<<",
		"no source": `<ScannerCapabilities><Version>2.0</Version></ScannerCapabilities>`,
		"wrong doc": `<ScannerStatus><State>Idle</State></ScannerStatus>`,
	} {
		if _, err := docscan.ParseCapabilities([]byte(b)); !errors.Is(err, docscan.ErrBadResponse) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := docscan.ParseStatus([]byte(`<ScannerStatus></ScannerStatus>`)); !errors.Is(err, docscan.ErrBadResponse) {
		t.Errorf("status without state: %v", err)
	}
}

func FuzzParseESCL(f *testing.F) {
	f.Add([]byte(docscantest.Capabilities))
	f.Add([]byte(`<scan:ScannerStatus xmlns:scan="x"><pwg:State>Idle</pwg:State><scan:AdfState>ScannerAdfJam</scan:AdfState></scan:ScannerStatus>`))
	f.Add([]byte(`<ScannerCapabilities><Platen><PlatenInputCaps><SettingProfiles><SettingProfile><ColorModes><ColorMode>RGB24</ColorMode></ColorModes></SettingProfile></SettingProfiles></PlatenInputCaps></Platen></ScannerCapabilities>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := docscan.ParseCapabilities(b); err == nil && c.Platen == nil && c.ADF == nil {
			t.Fatal("capabilities without input accepted")
		}
		if s, err := docscan.ParseStatus(b); err == nil {
			_ = s.Err()
		}
	})
}

func TestSANEFeeder(t *testing.T) {
	dir := docscantest.SANEConfig(t)
	s := &docscan.SANE{Device: "test", ConfigDir: dir}
	pages, err := s.Scan(ctx(t), docscan.Options{Resolution: 25, ADF: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 10 { // the test backend's feeder holds 10 sheets
		t.Fatalf("%d pages from the feeder, want 10", len(pages))
	}
	s.Extra = []string{"--enable-test-options", "--read-return-value", "SANE_STATUS_JAMMED"}
	if _, err := s.Scan(ctx(t), docscan.Options{Resolution: 25, ADF: true}); !errors.Is(err, docscan.ErrJammed) {
		t.Fatalf("jammed feeder: %v", err)
	}
}

func TestSANEProbe(t *testing.T) {
	dir := docscantest.SANEConfig(t)
	if err := (&docscan.SANE{Device: "test", ConfigDir: dir}).Probe(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := (&docscan.SANE{Device: "nosuch", ConfigDir: dir}).Probe(ctx(t)); !errors.Is(err, docscan.ErrNoDevice) {
		t.Fatalf("missing device: %v", err)
	}
}
