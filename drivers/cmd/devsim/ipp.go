package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/kioskfleet/kioskfleet/drivers/ipp/ippeve"
)

var (
	errNotInstalled = ippeve.ErrNotInstalled
	findBin         = ippeve.LookPath
)

// ippPrinter is CUPS's ippeveprinter, a real IPP Everywhere printer (see ippeve). Each job runs a
// script that fails the job and reports media-empty while DIR/faults/media-empty exists.
// Unplugged, the printer is switched off (its processes stop, connections are refused); plugged
// in again, it starts on the same port with its faults kept.
type ippPrinter struct {
	ctx  context.Context
	opts ippeve.Options
	uri  string
	dir  string

	mu     sync.Mutex      // guards ev and faults; held across a start
	ev     *ippeve.Printer // nil while unplugged
	faults faultSet
}

func startIPP(ctx context.Context, dir string, logw io.Writer) (*ippPrinter, error) {
	if err := os.MkdirAll(filepath.Join(dir, "faults"), 0o755); err != nil {
		return nil, err
	}
	p := &ippPrinter{ctx: ctx, dir: dir, faults: faultSet{}, opts: ippeve.Options{Dir: dir, Log: logw,
		Command: "# devsim: fail the job while the media-empty fault is on\n" +
			"if [ -e " + filepath.Join(dir, "faults", "media-empty") + " ]; then echo 'STATE: +media-empty' >&2; exit 1; fi\n" +
			"echo 'STATE: -media-empty' >&2\nexit 0\n"}}
	if err := p.plug(); err != nil {
		return nil, err
	}
	u, err := url.Parse(p.ev.URI)
	if err == nil {
		p.opts.Port, err = strconv.Atoi(u.Port())
	}
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("ipp printer URI %q: %w", p.ev.URI, err)
	}
	p.uri = p.ev.URI
	return p, nil
}

// plug switches the printer on.
func (p *ippPrinter) plug() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ev != nil {
		return nil
	}
	ev, err := ippeve.Start(p.ctx, p.opts)
	if err != nil {
		return err
	}
	p.ev = ev
	return nil
}

// unplug switches the printer off.
func (p *ippPrinter) unplug() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ev != nil {
		p.ev.Stop()
		p.ev = nil
	}
}

func (p *ippPrinter) stop() { p.unplug() }

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
	return info{ID: "a4", Kind: "ipp", Profile: profIPP, Path: p.uri, Plugged: p.ev != nil, Faults: p.faults.active(), Known: []string{"media-empty"}}
}
