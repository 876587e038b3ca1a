package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Records keeps the uplink: every record a device sent, committed idempotently in groups, and the
// contiguous watermark of each (device, epoch) that the hub acks.
type Records interface {
	// CommitBatches commits all batches in one transaction: each record is inserted unless
	// (device, epoch, seq) exists already, the effects of newly inserted records are applied, and
	// the contiguous watermark of every touched (device, epoch) is returned, in input order of
	// first appearance. Each batch's device's last-seen advances to the batch's RecvTS. Nothing is
	// visible until all of it is durable.
	CommitBatches(ctx context.Context, batches []Batch) ([]Watermark, error)
	// Watermark returns the contiguous watermark of a device and epoch (0 if none).
	Watermark(ctx context.Context, deviceID, epoch string) (uint64, error)
	ListRecords(ctx context.Context, f RecordFilter) ([]Record, error)
}

// Record is an uplink record as stored by the hub.
type Record struct {
	ID       int64 // hub-wide insertion order
	DeviceID string
	Epoch    string
	Seq      uint64
	Kind     string
	Class    wire.Class
	DeviceTS time.Time
	RecvTS   time.Time // hub clock
	Body     json.RawMessage
}

// RecordFilter selects records. Only records of the contiguous prefix of each epoch are listed
// (records parked beyond a gap appear once it is filled). Without DeviceID, records come in
// hub-wide insertion (ID) order; with DeviceID, in (epoch first seen, seq) order, and AfterID is
// the ID of the last record of the previous page.
type RecordFilter struct {
	DeviceID string
	Kind     string
	AfterID  int64
	Limit    int // 0: backend default (1000)
}

// Effect is a change to device state that a record carries. A backend applies a record's effect in
// the same transaction that first stores the record, and never for a duplicate.
type Effect struct {
	Command     *wire.CommandResult // Commands: the command's new state
	Reported    *wire.Reported      // State: the reported document
	Health      json.RawMessage     // Devices: heartbeat body
	Peripherals json.RawMessage     // Devices: peripherals body
}

// IncomingRecord is a record to commit, with the effect decoded from its body.
type IncomingRecord struct {
	wire.Record
	Effect Effect
}

// Batch is one decoded uplink batch to commit.
type Batch struct {
	DeviceID string
	Epoch    string
	RecvTS   time.Time
	Records  []IncomingRecord
}

// Watermark is the highest contiguous sequence committed for a device and epoch: every record
// 1..UpTo is durable, and UpTo+1 is not. It is what the hub acks.
type Watermark struct {
	DeviceID string
	Epoch    string
	UpTo     uint64
}

// CheckBatches reports what CommitBatches must refuse (ErrInvalid): a batch without a device or
// epoch, a seq of 0 or beyond int64, a record without kind or body. Backends call it before they
// begin, so that a refused call commits nothing.
func CheckBatches(batches []Batch) error {
	for _, b := range batches {
		if b.DeviceID == "" || b.Epoch == "" {
			return fmt.Errorf("%w: batch without a device or epoch", ErrInvalid)
		}
		for _, r := range b.Records {
			if r.Seq == 0 || r.Seq > math.MaxInt64 {
				return fmt.Errorf("%w: device %s epoch %s: seq %d out of range", ErrInvalid, b.DeviceID, b.Epoch, r.Seq)
			}
			if r.Kind == "" || len(r.Body) == 0 {
				return fmt.Errorf("%w: device %s epoch %s seq %d: record without kind or body", ErrInvalid, b.DeviceID, b.Epoch, r.Seq)
			}
		}
	}
	return nil
}
