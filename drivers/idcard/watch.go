package idcard

import (
	"context"
	"errors"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/transport"
)

// EventKind is what changed on the reader.
type EventKind int

// Card presence events (XFS4IoT CardReader.MediaInsertedEvent / MediaRemovedEvent) and reader
// faults.
const (
	CardInserted EventKind = iota + 1
	CardRemoved
	ReaderFault     // Err says why (timeout, SAM fault, bad frames); reported once until it clears
	ReaderRecovered // the fault cleared
)

func (k EventKind) String() string {
	return [...]string{"", "inserted", "removed", "fault", "recovered"}[k]
}

// Event is a change seen by Watch.
type Event struct {
	Kind EventKind
	At   time.Time
	Err  error // for ReaderFault
}

// Watch polls for a card (find card) every interval and calls emit on every change: CardInserted
// when a card appears, CardRemoved when it goes, ReaderFault / ReaderRecovered around errors. It
// blocks until ctx ends (returning nil) or the transport goes away (returning an error wrapping
// transport.ErrClosed). The caller owns the goroutine that runs it; emit runs on it.
//
// A card is taken as present until find card reports none. Some readers report "no card" for a card
// that was just read and is still on the reader (uncertain across models); a kiosk reacts to
// CardRemoved by ending the session, which is the safe side.
func (r *Reader) Watch(ctx context.Context, interval time.Duration, emit func(Event)) error {
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	present, faulted := false, false
	for {
		err := r.FindCard(ctx)
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, transport.ErrClosed):
			return err
		case err == nil || errors.Is(err, StatusNoCard):
			if faulted {
				faulted = false
				emit(Event{Kind: ReaderRecovered, At: now})
			}
			if found := err == nil; found != present {
				present = found
				kind := CardRemoved
				if present {
					kind = CardInserted
				}
				emit(Event{Kind: kind, At: now})
			}
		case !faulted:
			faulted = true
			emit(Event{Kind: ReaderFault, At: now, Err: err})
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
