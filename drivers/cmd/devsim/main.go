// Command devsim runs peripheral simulators that speak the devices' real bytes on pseudo-terminals,
// so that drivers, the kiosk agent and operators can work without hardware.
//
//	devsim idcard [--card resident] [--fault no-card ...]   GA 467 ID card reader on a new pty
//	devsim escpos [--fault paper-out ...]                   ESC/POS receipt printer on a new pty
//	devsim qrscan [--suffix cr]                             QR scanner on a new pty; scans stdin lines
//	devsim kiosk --dir DIR                                  a whole kiosk's devices, configured for kiosk-agent
//	devsim ctl --dir DIR COMMAND ...                        inject faults into a running kiosk
//
// Each single-device command prints the pty path to open (8N1, any baud) on its first line and
// runs until interrupted.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kioskfleet/kioskfleet/drivers/qrscan"
)

const usage = `devsim runs peripheral simulators on pseudo-terminals.

Usage:
  devsim idcard [--card NAME] [--fault NAME]...   GA 467 ID card reader; prints its pty path
  devsim escpos [--fault NAME]...                 ESC/POS receipt printer; prints its pty path
  devsim qrscan [--suffix cr|lf|crlf|none]        QR scanner; prints its pty path, then scans
                                                  each line read from standard input
  devsim kiosk --dir DIR [flags]                  ID reader, receipt printer, QR scanner (ptys), IPP printer
                                                  (ippeveprinter) and SANE test scanner where
                                                  installed; writes DIR/devices.yaml for
                                                  kiosk-agent and DIR/control.url
  devsim ctl --dir DIR COMMAND                    talk to a running "devsim kiosk":
      devices                    list devices, their paths and active faults
      fault ID NAME [on|off]     turn a fault on (default) or off
      unplug ID | replug ID      pull or reinsert a device's cable (the IPP printer is
                                 switched off and on, the SANE scanner detached)
      card ID NAME               put a sample card on an ID reader (none takes it off)
      scan ID CODE               scan CODE on a QR scanner

Faults:
  escpos:  paper-near-end paper-out cover-open cutter-error offline slow
  idcard:  no-card misread bad-checksum sam-fault slow
  ipp:     media-empty (the next job fails and the printer reports media-empty)
Cards: resident hkmotw foreign2017 foreign2023 none

Run "devsim COMMAND --help" for a command's flags. Stop with Ctrl-C.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Stdin, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "devsim: %v\n\n%s", err, usage)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "devsim: %v\n", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, stdin io.Reader, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command", errUsage)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "idcard":
		return runIDCard(ctx, args[1:], stdout, stderr)
	case "escpos":
		return runESCPOS(ctx, args[1:], stdout, stderr)
	case "qrscan":
		return runQRScan(ctx, args[1:], stdin, stdout, stderr)
	case "kiosk":
		return runKiosk(ctx, args[1:], stdout, stderr)
	case "ctl":
		return runCtl(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

// faultList is a repeatable --fault flag.
type faultList []string

func (f *faultList) String() string     { return strings.Join(*f, ",") }
func (f *faultList) Set(s string) error { *f = append(*f, s); return nil }

func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: devsim %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func runIDCard(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("idcard", "idcard [--card NAME] [--fault NAME]...", stderr)
	card := fs.String("card", "resident", "sample card on the reader: resident, hkmotw, foreign2017, foreign2023, senior (turns 60 in ten days), none")
	var faults faultList
	fs.Var(&faults, "fault", "fault to inject, repeatable: no-card, misread, bad-checksum, sam-fault, slow")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sim, err := newIDCard(ctx, *card)
	if err != nil {
		return err
	}
	return serveOne(ctx, &device{ID: "idcard0", Kind: "idcard", sim: sim}, faults, stdout)
}

func runESCPOS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("escpos", "escpos [--fault NAME]...", stderr)
	var faults faultList
	fs.Var(&faults, "fault", "fault to inject, repeatable: paper-near-end, paper-out, cover-open, cutter-error, offline, slow")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return serveOne(ctx, &device{ID: "receipt0", Kind: "escpos", sim: newESCPOS()}, faults, stdout)
}

func runQRScan(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("qrscan", "qrscan [--suffix cr|lf|crlf|none]", stderr)
	suffix := fs.String("suffix", "cr", "what ends each scan: cr, lf, crlf or none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch qrscan.Suffix(*suffix) {
	case qrscan.SuffixCR, qrscan.SuffixLF, qrscan.SuffixCRLF, qrscan.SuffixNone:
	default:
		return fmt.Errorf("%w: --suffix must be cr, lf, crlf or none", errUsage)
	}
	sim := &qrSim{suffix: qrscan.Suffix(*suffix)}
	d := &device{ID: "qr0", Kind: "qrscan", sim: sim}
	if err := d.plug(); err != nil {
		return err
	}
	defer d.unplug()
	fmt.Fprintln(stdout, d.info().Pty)
	lines := make(chan string)
	go func() { // ends when stdin does; a blocked read outlives ctx only until the process exits
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case l, ok := <-lines:
			if !ok {
				<-ctx.Done() // stdin closed: keep the scanner plugged in until interrupted
				return nil
			}
			if err := sim.Scan(l); err != nil {
				return err
			}
		}
	}
}

// serveOne plugs d in, prints its pty path and waits for ctx.
func serveOne(ctx context.Context, d *device, faults []string, stdout io.Writer) error {
	for _, f := range faults {
		if err := d.sim.SetFault(f, true); err != nil {
			return err
		}
	}
	if err := d.plug(); err != nil {
		return err
	}
	defer d.unplug()
	fmt.Fprintln(stdout, d.info().Pty)
	<-ctx.Done()
	return nil
}
