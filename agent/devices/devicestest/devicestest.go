// Package devicestest holds test helpers for the device manager: a Recorder that stands in for
// the agent's outbox and keeps every record the manager reports, encoded as the outbox would.
package devicestest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Record is one reported record.
type Record struct {
	Kind  string
	Class wire.Class
	Body  json.RawMessage
}

// Recorder is a devices.Reporter that keeps records in memory.
type Recorder struct {
	mu      sync.Mutex
	records []Record
	signal  chan struct{}
	cursor  map[string]int // per kind: records before this index were consumed by a wait
}

var _ devices.Reporter = (*Recorder)(nil)

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{signal: make(chan struct{}, 1), cursor: map[string]int{}}
}

// Report encodes body as JSON (as the outbox does) and keeps it.
func (r *Recorder) Report(_ context.Context, kind string, class wire.Class, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("devicestest: encode %s: %w", kind, err)
	}
	r.mu.Lock()
	r.records = append(r.records, Record{kind, class, b})
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
	return nil
}

// Records returns a copy of everything reported so far.
func (r *Recorder) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.records...)
}

// WaitPeripherals waits until a peripherals record satisfies ok and returns it; it fails the test
// after timeout, printing the last peripherals record seen. Waits of one kind are sequential:
// each looks only at the record the previous wait of that kind matched and those after it.
func (r *Recorder) WaitPeripherals(t testing.TB, timeout time.Duration, ok func(wire.Peripherals) bool) wire.Peripherals {
	t.Helper()
	var last wire.Peripherals
	got := r.wait(wire.KindPeripherals, timeout, func(rec Record) bool {
		if rec.Kind != wire.KindPeripherals {
			return false
		}
		// The strict decoder the hub, fleetctl and the console read it with.
		p, err := wire.DecodePeripherals(rec.Body)
		if err != nil {
			t.Fatalf("devicestest: bad peripherals body: %v", err)
		}
		last = p
		return ok(p)
	})
	if !got {
		t.Fatalf("devicestest: no matching peripherals record within %v; last: %+v", timeout, last)
	}
	return last
}

// WaitAlert waits until an alert record satisfies ok and returns it.
func (r *Recorder) WaitAlert(t testing.TB, timeout time.Duration, ok func(wire.Alert) bool) wire.Alert {
	t.Helper()
	var found wire.Alert
	got := r.wait(wire.KindAlert, timeout, func(rec Record) bool {
		if rec.Kind != wire.KindAlert {
			return false
		}
		var a wire.Alert
		if err := json.Unmarshal(rec.Body, &a); err != nil {
			t.Fatalf("devicestest: bad alert body: %v", err)
		}
		found = a
		return ok(a)
	})
	if !got {
		t.Fatalf("devicestest: no matching alert within %v", timeout)
	}
	return found
}

// wait scans records from kind's cursor until match holds (moving the cursor to the match) or
// timeout passes.
func (r *Recorder) wait(kind string, timeout time.Duration, match func(Record) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	r.mu.Lock()
	seen := r.cursor[kind]
	r.mu.Unlock()
	for {
		recs := r.Records()
		for ; seen < len(recs); seen++ {
			if match(recs[seen]) {
				r.mu.Lock()
				r.cursor[kind] = seen
				r.mu.Unlock()
				return true
			}
		}
		select {
		case <-r.signal:
		case <-deadline.C:
			return false
		}
	}
}

// Find returns the status of device id in p.
func Find(p wire.Peripherals, id string) (wire.Peripheral, bool) {
	for _, d := range p.Devices {
		if d.ID == id {
			return d, true
		}
	}
	return wire.Peripheral{}, false
}
