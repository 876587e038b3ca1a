package outbox

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

var _ Outbox = (*Memory)(nil)

// Memory is an Outbox held in memory: same semantics as SQLite, nothing survives the process.
// It is meant for the fleet simulator, which runs thousands of kiosks in one process.
type Memory struct {
	opts   Options
	epoch  string
	notify chan struct{}

	mu     sync.Mutex
	st     state
	recs   []wire.Record // seq order, none acked
	scan   int           // index before which no record is evictable
	closed bool
}

// NewMemory returns an empty in-memory outbox with a fresh epoch.
func NewMemory(opts Options) *Memory {
	return &Memory{opts: opts.withDefaults(), epoch: newEpoch(), notify: make(chan struct{}, 1), st: state{next: 1}}
}

func (m *Memory) Epoch() string           { return m.epoch }
func (m *Memory) Notify() <-chan struct{} { return m.notify }

func (m *Memory) NextSeq() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.next
}

func (m *Memory) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.stats(&m.opts)
}

func (m *Memory) Append(ctx context.Context, kind string, class wire.Class, body []byte) (uint64, error) {
	return m.AppendBatch(ctx, []Entry{{Kind: kind, Class: class, Body: body}})
}

func (m *Memory) AppendBatch(ctx context.Context, entries []Entry) (uint64, error) {
	if err := checkAll(entries); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	first, err := m.appendLocked(entries)
	if err != nil {
		return 0, err
	}
	notify(m.notify)
	return first, nil
}

func (m *Memory) appendLocked(entries []Entry) (uint64, error) {
	var need int64 = -1 << 62
	for _, e := range entries {
		// The batch is admitted as a whole: the strictest limit among its records applies.
		need = max(need, m.st.need(&m.opts, e.Kind, e.Class, 0))
	}
	for _, e := range entries {
		need += size(e.Kind, e.Body)
	}
	if need > 0 && !m.evict(need) {
		m.refuseLocked()
		return 0, fmt.Errorf("%w: %d more bytes needed under the cap of %d", ErrFull, need, m.opts.MaxBytes)
	}
	first := m.st.next
	ts := m.opts.Now().UnixMilli()
	for _, e := range entries {
		m.recs = append(m.recs, wire.Record{Seq: m.st.next, Kind: e.Kind, Class: e.Class, TS: ts, Body: append([]byte(nil), e.Body...)})
		m.st.next++
		m.st.depth++
		m.st.bytes += size(e.Kind, e.Body)
	}
	if m.st.oldestTS == 0 {
		m.st.oldestTS = ts
	}
	return first, nil
}

// evict turns the oldest telemetry into tombstones until need bytes are free; it changes nothing
// and returns false if that is impossible.
func (m *Memory) evict(need int64) bool {
	var freed int64
	var victims []int
	for i := m.scan; i < len(m.recs) && freed < need; i++ {
		r := m.recs[i]
		if !evictable(r.Kind, r.Class) {
			continue
		}
		if _, f := tombstone(r.Kind, size(r.Kind, r.Body)); f > 0 {
			freed += f
			victims = append(victims, i)
		}
	}
	if freed < need {
		return false
	}
	for _, i := range victims {
		r := &m.recs[i]
		body, f := tombstone(r.Kind, size(r.Kind, r.Body))
		r.Kind, r.Body = KindEvicted, body
		m.st.bytes -= f
		m.st.evicted++
	}
	m.scan = victims[len(victims)-1] + 1
	return true
}

func (m *Memory) refuseLocked() {
	m.st.refused++
	if !m.st.full {
		m.st.full = true
		_, _ = m.appendLocked([]Entry{{Kind: wire.KindAlert, Class: wire.Business, Body: alertBody(AlertFull, &m.opts)}})
		notify(m.notify)
	}
}

func (m *Memory) Pending(ctx context.Context, afterSeq uint64, max int) ([]wire.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	i := sort.Search(len(m.recs), func(i int) bool { return m.recs[i].Seq > afterSeq })
	n := min(max, len(m.recs)-i)
	if n <= 0 {
		return nil, nil
	}
	out := make([]wire.Record, n)
	copy(out, m.recs[i:i+n])
	return out, nil
}

func (m *Memory) Ack(ctx context.Context, epoch string, upTo uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if epoch != m.epoch {
		return nil
	}
	if upTo >= m.st.next {
		return fmt.Errorf("%w: ack up to %d, last appended %d", ErrAckAhead, upTo, m.st.next-1)
	}
	n := sort.Search(len(m.recs), func(i int) bool { return m.recs[i].Seq > upTo })
	if n == 0 {
		return nil
	}
	for _, r := range m.recs[:n] {
		m.st.bytes -= size(r.Kind, r.Body)
	}
	clear(m.recs[:n]) // let the acked bodies be collected
	m.recs = m.recs[n:]
	m.scan = max(0, m.scan-n)
	m.st.depth = int64(len(m.recs))
	m.st.oldestTS = 0
	if len(m.recs) > 0 {
		m.st.oldestTS = m.recs[0].TS
	}
	if m.st.cleared(&m.opts) {
		m.st.full = false
		_, _ = m.appendLocked([]Entry{{Kind: wire.KindAlert, Class: wire.Business, Body: alertBody(AlertCleared, &m.opts)}})
		notify(m.notify)
	}
	return nil
}

func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
