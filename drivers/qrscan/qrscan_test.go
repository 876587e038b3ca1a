package qrscan_test

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

	"github.com/kioskfleet/kioskfleet/drivers/qrscan"
	"github.com/kioskfleet/kioskfleet/drivers/qrscan/qrscansim"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type rig struct {
	sim  *qrscansim.Sim
	sc   *qrscan.Scanner
	done chan error
}

func start(t *testing.T, cfg qrscan.Config) *rig {
	t.Helper()
	suffix := cfg.Suffix
	if suffix == "" {
		suffix = qrscan.SuffixCR
	}
	sim, err := qrscansim.New(suffix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	port, err := transport.Serial{}.OpenSerial(sim.Path, transport.SerialMode{Baud: 9600})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { port.Close() })
	sc, err := qrscan.New(port, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{sim: sim, sc: sc, done: make(chan error, 1)}
	go func() { r.done <- sc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return r
}

func (r *rig) next(t *testing.T) qrscan.Scan {
	t.Helper()
	select {
	case s, ok := <-r.sc.Scans():
		if !ok {
			t.Fatal("scans channel closed")
		}
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no scan within 5s")
	}
	return qrscan.Scan{}
}

func TestSuffixes(t *testing.T) {
	for _, suf := range []qrscan.Suffix{qrscan.SuffixCR, qrscan.SuffixLF, qrscan.SuffixCRLF, qrscan.SuffixNone} {
		t.Run(string(suf), func(t *testing.T) {
			r := start(t, qrscan.Config{Suffix: suf, Idle: 80 * time.Millisecond})
			codes := []string{"https://gov.example/login?t=9f8e7d", "粤B12345", "6901234567892"}
			for _, c := range codes {
				if err := r.sim.Scan(c); err != nil {
					t.Fatal(err)
				}
				if suf == qrscan.SuffixNone {
					// without a suffix only a pause separates scans
					if got := r.next(t); got.Err != nil || got.Data != c {
						t.Fatalf("scan = %+v, want %q", got, c)
					}
				}
			}
			if suf != qrscan.SuffixNone {
				for _, c := range codes {
					if got := r.next(t); got.Err != nil || got.Data != c {
						t.Fatalf("scan = %+v, want %q", got, c)
					}
				}
			}
			if st := r.sc.Stats(); st.Scans != 3 || st.TooLong+st.Binary+st.Incomplete != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestScanSplitAcrossWrites(t *testing.T) {
	r := start(t, qrscan.Config{Suffix: qrscan.SuffixCRLF})
	for _, part := range []string{"ABC", "DEF\r", "\nGHI\r\n"} {
		if err := r.sim.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // let the parts arrive as separate reads
	}
	if a, b := r.next(t), r.next(t); a.Data != "ABCDEF" || b.Data != "GHI" {
		t.Fatalf("scans %+v %+v", a, b)
	}
}

func TestRejects(t *testing.T) {
	r := start(t, qrscan.Config{Suffix: qrscan.SuffixCR, MaxLength: 64, Idle: 200 * time.Millisecond})
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.sim.Write(append(bytes.Repeat([]byte{'x'}, 1000), '\r'))) // oversize
	must(r.sim.Scan("good-1"))
	must(r.sim.Write([]byte{0x01, 0xFF, 0xFE, 'a', '\r'})) // binary garbage
	must(r.sim.Scan("good-2"))
	must(r.sim.Write([]byte("cut-short"))) // no suffix, then silence

	want := []error{qrscan.ErrTooLong, nil, qrscan.ErrBinary, nil, qrscan.ErrIncomplete}
	for i, w := range want {
		s := r.next(t)
		var se *qrscan.ScanError
		switch {
		case w == nil && (s.Err != nil || !strings.HasPrefix(s.Data, "good-")):
			t.Fatalf("event %d = %+v, want a good scan", i, s)
		case w != nil && (!errors.Is(s.Err, w) || !errors.As(s.Err, &se) || s.Data != ""):
			t.Fatalf("event %d = %+v, want %v", i, s, w)
		}
		if strings.Contains(s.String(), "good-") {
			t.Errorf("String() shows scan data: %s", s)
		}
	}
	if st := r.sc.Stats(); st != (qrscan.Stats{Scans: 2, TooLong: 1, Binary: 1, Incomplete: 1}) {
		t.Errorf("stats %+v", st)
	}
}

func TestUnplugEndsRun(t *testing.T) {
	r := start(t, qrscan.Config{})
	r.sim.Unplug()
	select {
	case err := <-r.done:
		if !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("Run returned %v, want ErrClosed", err)
		}
		r.done <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not notice the unplug")
	}
	if _, ok := <-r.sc.Scans(); ok {
		t.Fatal("scans channel not closed")
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []qrscan.Config{{Suffix: "tab"}, {MaxLength: -1}, {Idle: -time.Second}} {
		if _, err := qrscan.New(nil, c, slog.Default()); !errors.Is(err, qrscan.ErrConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
