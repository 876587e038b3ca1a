package ippeve_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/drivers/ipp"
	"github.com/kioskfleet/kioskfleet/drivers/ipp/ippeve"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A job printed through the ipp driver lands in the spool; Stop leaves no process behind.
func TestStartPrintStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := ippeve.Start(ctx, ippeve.Options{Dir: t.TempDir(), Name: "ippeve-test", Command: "exit 0\n"})
	if errors.Is(err, ippeve.ErrNotInstalled) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	c, err := ipp.New(p.URI, &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.PollInterval = 100 * time.Millisecond
	if a, err := c.PrinterAttributes(ctx); err != nil || a.Name != "ippeve-test" || a.Ready() != nil {
		t.Fatalf("attributes %+v, %v\n%s", a, err, p.Log())
	}
	pdf, err := ipp.TestPagePDF(ipp.TestPage{KioskID: "kiosk-0001", Printer: "ippeve-test", Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if j, err := c.Print(ctx, pdf, ipp.JobOptions{Name: "page"}); err != nil || j.State != ipp.JobCompleted {
		t.Fatalf("job %+v, %v\n%s", j, err, p.Log())
	}
	if f, err := p.JobFiles("*.pdf"); err != nil || len(f) != 1 {
		t.Fatalf("spool: %v %v", f, err)
	}
	if c := children(); len(c) != 3 {
		t.Errorf("children %q, want dbus-daemon, avahi-daemon, ippeveprinter", c)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if r := children(); len(r) > 0 {
		t.Errorf("still running after Stop: %q", r)
	}
}

// children lists the command lines of this test's child processes.
func children() (out []string) {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, _ := os.ReadFile(f) // pid (comm) state ppid ...; comm may hold spaces and parentheses
		var state string
		var ppid int
		if _, err := fmt.Sscan(string(b[bytes.LastIndexByte(b, ')')+1:]), &state, &ppid); err == nil && ppid == os.Getpid() {
			cmd, _ := os.ReadFile(filepath.Join(filepath.Dir(f), "cmdline"))
			out = append(out, strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return out
}

// A relative folder works: avahi-daemon changes its working folder, so it must be handed the
// dbus socket by absolute path (make run once passed var/devsim/ipp and avahi never reached it).
func TestRelativeDir(t *testing.T) {
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := ippeve.Start(ctx, ippeve.Options{Dir: filepath.Join("var", "ipp"), Command: "exit 0\n"})
	if errors.Is(err, ippeve.ErrNotInstalled) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if !filepath.IsAbs(p.SpoolDir) {
		t.Errorf("spool folder %q is relative", p.SpoolDir)
	}
	c, err := ipp.New(p.URI, &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if a, err := c.PrinterAttributes(ctx); err != nil || a.Ready() != nil {
		t.Fatalf("attributes %+v, %v\n%s", a, err, p.Log())
	}
}

// A folder too deep for a unix socket path is refused up front, with the reason.
func TestDirTooLong(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	_, err := ippeve.Start(context.Background(), ippeve.Options{Dir: dir})
	if errors.Is(err, ippeve.ErrNotInstalled) {
		t.Skip(err)
	}
	if err == nil || !strings.Contains(err.Error(), "unix socket path") {
		t.Fatalf("Start in a %d-byte folder: %v, want the socket path refused", len(dir), err)
	}
}
