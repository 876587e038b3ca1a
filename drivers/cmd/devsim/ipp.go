package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/kioskfleet/kioskfleet/drivers/ipp/ippeve"
)

var (
	errNotInstalled = ippeve.ErrNotInstalled
	findBin         = ippeve.LookPath
)

// ippPrinter is CUPS's ippeveprinter, a real IPP Everywhere printer (see ippeve). Each job runs a
// script that fails the job and reports media-empty while DIR/faults/media-empty exists.
type ippPrinter struct {
	ev     *ippeve.Printer
	uri    string
	dir    string
	mu     sync.Mutex
	faults faultSet
}

func startIPP(ctx context.Context, dir string, logw io.Writer) (*ippPrinter, error) {
	if err := os.MkdirAll(filepath.Join(dir, "faults"), 0o755); err != nil {
		return nil, err
	}
	p, err := ippeve.Start(ctx, ippeve.Options{Dir: dir, Log: logw, Command: "# devsim: fail the job while the media-empty fault is on\n" +
		"if [ -e " + filepath.Join(dir, "faults", "media-empty") + " ]; then echo 'STATE: +media-empty' >&2; exit 1; fi\n" +
		"echo 'STATE: -media-empty' >&2\nexit 0\n"})
	if err != nil {
		return nil, err
	}
	return &ippPrinter{ev: p, uri: p.URI, dir: dir, faults: faultSet{}}, nil
}

func (p *ippPrinter) stop() { p.ev.Stop() }

func (p *ippPrinter) setFault(name string, on bool) error {
	if name != "media-empty" {
		return fmt.Errorf("%w %q for ipp (known: media-empty)", errUnknownFault, name)
	}
	flag := filepath.Join(p.dir, "faults", name)
	var err error
	if on {
		err = os.WriteFile(flag, nil, 0o644)
	} else if err = os.Remove(flag); errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if err == nil {
		p.mu.Lock()
		p.faults[name] = on
		p.mu.Unlock()
	}
	return err
}

func (p *ippPrinter) info() info {
	p.mu.Lock()
	defer p.mu.Unlock()
	return info{ID: "a4", Kind: "ipp", Profile: profIPP, Path: p.uri, Plugged: true, Faults: p.faults.active(), Known: []string{"media-empty"}}
}
