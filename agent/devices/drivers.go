package devices

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/escpos"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
)

// DefaultOpeners returns the drivers built into the agent, by profile driver name.
func DefaultOpeners() map[profile.Driver]Opener {
	return map[profile.Driver]Opener{
		profile.DriverESCPOS: OpenESCPOS,
	}
}

// openSerial opens e's serial port at the profile's baud rate and waits out the profile's settle
// delay.
func openSerial(ctx context.Context, e profile.DeviceEntry, p *profile.Profile) (transport.Port, error) {
	if p.Transport.Kind != profile.TransportSerial {
		return nil, fmt.Errorf("devices: %s: transport %s is not supported by this agent yet", p.ID, p.Transport.Kind)
	}
	if e.Path == "" {
		return nil, fmt.Errorf("devices: %s: serial profile %s needs a path", e.ID, p.ID)
	}
	port, err := transport.Serial{}.OpenSerial(e.Path, transport.SerialMode{Baud: p.Transport.Baud})
	if err != nil {
		return nil, err
	}
	if d := p.Quirks.SettleDelay; d > 0 && !sleep(ctx, d) {
		port.Close()
		return nil, ctx.Err()
	}
	return port, nil
}

// escposDevice adapts an ESC/POS receipt printer.
type escposDevice struct {
	dev   *escpos.Device
	link  escpos.Link
	close func() error
}

var (
	_ Device          = (*escposDevice)(nil)
	_ TestPagePrinter = (*escposDevice)(nil)
)

// OpenESCPOS opens an ESC/POS receipt printer on a serial port.
func OpenESCPOS(ctx context.Context, e profile.DeviceEntry, p *profile.Profile, log *slog.Logger) (Device, error) {
	port, err := openSerial(ctx, e, p)
	if err != nil {
		return nil, err
	}
	link := &escpos.SerialLink{Port: port}
	d := &escposDevice{
		dev:   escpos.New(link, log, escpos.Options{StatusTimeout: p.Quirks.ReplyTimeout, NoRealtimeStatus: p.Quirks.NoRealtimeStatus}),
		link:  link,
		close: port.Close,
	}
	if p.Quirks.ResetOnOpen {
		if err := link.Send(ctx, []byte{escpos.ESC, '@'}); err != nil {
			port.Close()
			return nil, fmt.Errorf("devices: reset %s: %w", e.ID, err)
		}
	}
	return d, nil
}

func (d *escposDevice) Close() error { return d.close() }

func (d *escposDevice) Status(ctx context.Context) (Status, error) {
	s, err := d.dev.Status(ctx)
	if errors.Is(err, escpos.ErrNoStatus) {
		return Status{State: StateOK, Consumables: []Consumable{{"paper", LevelUnknown}}}, nil
	}
	if err != nil {
		return Status{}, err
	}
	return escposStatus(s), nil
}

// escposStatus maps a printer's flags to reasons: the reason that stops printing first.
func escposStatus(s escpos.Status) Status {
	var st Status
	add := func(on bool, r string) {
		if on {
			st.Reasons = append(st.Reasons, r)
		}
	}
	add(s.CoverOpen, "cover-open")
	add(s.PaperOut || s.PaperEndStop, "paper-out")
	add(s.CutterError, "cutter-error")
	add(s.Unrecoverable, "unrecoverable-error")
	add(s.AutoRecoverable, "auto-recoverable-error")
	add(s.Offline && len(st.Reasons) == 0, "offline")
	paper := LevelOK
	switch {
	case s.PaperOut || s.PaperEndStop:
		paper = LevelEmpty
	case s.PaperNearEnd:
		paper = LevelLow
	}
	st.Consumables = []Consumable{{"paper", paper}}
	switch {
	case s.Err() != nil:
		st.State = StateFault
	case s.PaperNearEnd:
		st.State = StateDegraded
		st.Reasons = append(st.Reasons, "paper-near-end")
	default:
		st.State = StateOK
	}
	return st
}

// PrintTestPage prints page as text and cuts. ESC/POS has no job acknowledgement: the job counts
// as completed when it was sent and the printer's status afterwards shows no fault.
func (d *escposDevice) PrintTestPage(ctx context.Context, page TestPage) (JobOutcome, error) {
	job := escpos.NewJob().Line(page.Title).Line("")
	for _, l := range page.Lines {
		job.Line(l)
	}
	job.Line(time.Now().Format(time.DateTime)).Feed(4).Cut(false)
	err := d.dev.Print(ctx, job)
	var se *escpos.StatusError
	switch {
	case errors.As(err, &se):
		return JobOutcome{State: JobRefused, Reasons: escposStatus(se.Status).Reasons, Error: err.Error()}, nil
	case err != nil:
		return JobOutcome{State: JobAborted, Error: err.Error()}, err
	}
	after, err := d.dev.Status(ctx)
	if errors.Is(err, escpos.ErrNoStatus) {
		return JobOutcome{State: JobCompleted}, nil
	}
	if err != nil {
		return JobOutcome{State: JobAborted, Error: err.Error()}, err
	}
	if after.Err() != nil {
		return JobOutcome{State: JobAborted, Reasons: escposStatus(after).Reasons, Error: after.Err().Error()}, nil
	}
	return JobOutcome{State: JobCompleted}, nil
}
