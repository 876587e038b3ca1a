package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/mattn/go-sqlite3"

	"github.com/kioskfleet/kioskfleet/pkg/sqlitex"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

var _ Outbox = (*SQLite)(nil)

const schema = `
CREATE TABLE IF NOT EXISTS outbox_meta (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	epoch    TEXT    NOT NULL,
	next_seq INTEGER NOT NULL,
	evicted  INTEGER NOT NULL DEFAULT 0,
	refused  INTEGER NOT NULL DEFAULT 0,
	full     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS outbox_records (
	seq   INTEGER PRIMARY KEY,
	kind  TEXT    NOT NULL,
	class TEXT    NOT NULL,
	ts    INTEGER NOT NULL,
	body  BLOB    NOT NULL,
	size  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_evictable ON outbox_records (seq)
	WHERE class = 't' AND kind <> 'outbox.evicted';
`

// SQLite is the durable Outbox: one SQLite database in WAL mode with synchronous=FULL. A single
// writer goroutine gathers concurrent appends, acks and updates and commits them in one
// transaction (group commit), so each caller still waits for its fsync while the disk sees one
// fsync per group.
type SQLite struct {
	db     *sqlitex.DB // W: the writer goroutine's only; R: Pending
	opts   Options
	epoch  string
	notify chan struct{}
	reqs   chan *request
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu sync.Mutex
	st state
}

type request struct {
	ctx     context.Context
	entries []Entry         // Append / AppendBatch
	fn      func(*Tx) error // Update
	ack     *wire.AckMsg    // Ack
	first   uint64
	err     error
	done    chan struct{}
}

// Open opens (or creates) the outbox database at path. A new, empty database gets a new epoch.
func Open(ctx context.Context, path string, opts Options) (*SQLite, error) {
	db, err := sqlitex.Open(ctx, path, sqlitex.Options{})
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	o := &SQLite{db: db, opts: opts.withDefaults(), notify: make(chan struct{}, 1),
		reqs: make(chan *request), quit: make(chan struct{}), done: make(chan struct{})}
	if err := o.load(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	go o.run()
	if o.st.depth > 0 {
		notify(o.notify)
	}
	return o, nil
}

// load creates the schema if needed and reads the epoch and bookkeeping.
func (o *SQLite) load(ctx context.Context) error {
	tx, err := o.db.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	var full int
	err = tx.QueryRowContext(ctx, `SELECT epoch, next_seq, evicted, refused, full FROM outbox_meta`).
		Scan(&o.epoch, &o.st.next, &o.st.evicted, &o.st.refused, &full)
	if errors.Is(err, sql.ErrNoRows) {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox_records`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("database has %d records but no epoch: refusing to guess", n)
		}
		o.epoch, o.st.next = newEpoch(), 1
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox_meta (id, epoch, next_seq) VALUES (1, ?, 1)`, o.epoch); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("read epoch: %w", err)
	}
	o.st.full = full != 0
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(MAX(seq), 0) FROM outbox_records`).
		Scan(&o.st.depth, &o.st.bytes, new(uint64)); err != nil {
		return err
	}
	if o.st.depth > 0 {
		if err := tx.QueryRowContext(ctx, `SELECT ts FROM outbox_records ORDER BY seq LIMIT 1`).Scan(&o.st.oldestTS); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (o *SQLite) Epoch() string           { return o.epoch }
func (o *SQLite) Notify() <-chan struct{} { return o.notify }

func (o *SQLite) NextSeq() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.st.next
}

func (o *SQLite) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.st.stats(&o.opts)
}

func (o *SQLite) Append(ctx context.Context, kind string, class wire.Class, body []byte) (uint64, error) {
	return o.AppendBatch(ctx, []Entry{{Kind: kind, Class: class, Body: body}})
}

func (o *SQLite) AppendBatch(ctx context.Context, entries []Entry) (uint64, error) {
	if err := checkAll(entries); err != nil {
		return 0, err
	}
	r := &request{ctx: ctx, entries: entries}
	return r.first, o.do(r)
}

func (o *SQLite) Ack(ctx context.Context, epoch string, upTo uint64) error {
	if epoch != o.epoch || upTo == 0 {
		return nil
	}
	return o.do(&request{ctx: ctx, ack: &wire.AckMsg{Epoch: epoch, UpTo: upTo}})
}

// Update runs fn inside the writer's next group transaction: the rows fn writes through tx and the
// records it appends with tx.Append commit together, durably, or not at all (fn returning an
// error rolls back only fn's work). fn must be quick and must not call the outbox's other methods.
func (o *SQLite) Update(ctx context.Context, fn func(tx *Tx) error) error {
	return o.do(&request{ctx: ctx, fn: fn})
}

// do hands r to the writer and waits for its outcome. Once the writer has r, do waits for the
// commit even if ctx ends, so that a nil error always means durable and an error means not written.
func (o *SQLite) do(r *request) error {
	r.done = make(chan struct{})
	select {
	case o.reqs <- r:
	case <-o.quit:
		return ErrClosed
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
	<-r.done
	return r.err
}

// Pending reads from the database directly (WAL readers do not block the writer).
func (o *SQLite) Pending(ctx context.Context, afterSeq uint64, max int) ([]wire.Record, error) {
	if max <= 0 {
		return nil, nil
	}
	rows, err := o.db.R.QueryContext(ctx,
		`SELECT seq, kind, class, ts, body FROM outbox_records WHERE seq > ? ORDER BY seq LIMIT ?`, afterSeq, max)
	if err != nil {
		return nil, fmt.Errorf("outbox: pending: %w", err)
	}
	defer rows.Close()
	var out []wire.Record
	for rows.Next() {
		var r wire.Record
		var body []byte
		if err := rows.Scan(&r.Seq, &r.Kind, &r.Class, &r.TS, &body); err != nil {
			return nil, fmt.Errorf("outbox: pending: %w", err)
		}
		r.Body = body
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: pending: %w", err)
	}
	return out, nil
}

// Close stops the writer after its current group and closes the database.
func (o *SQLite) Close() error {
	var err error
	o.once.Do(func() {
		close(o.quit)
		<-o.done
		err = o.db.Close()
	})
	return err
}

// run is the writer goroutine: it owns all writes. Close stops it.
func (o *SQLite) run() {
	defer close(o.done)
	for {
		var group []*request
		select {
		case r := <-o.reqs:
			group = append(group, r)
		case <-o.quit:
			return
		}
		// Group commit: take whatever queued up while the previous group was committing. Waiting
		// for more (a fixed window) was measured slower at every concurrency (see BenchmarkAppend).
		n := len(group[0].entries) + 1
	gather:
		for n < o.opts.MaxGroup {
			select {
			case r := <-o.reqs:
				group = append(group, r)
				n += len(r.entries) + 1
			default:
				break gather
			}
		}
		o.commit(group)
	}
}

// commit runs one group in one transaction and releases its callers after the commit.
func (o *SQLite) commit(group []*request) {
	o.mu.Lock()
	work := o.st
	o.mu.Unlock()
	appended, err := o.apply(group, &work)
	if err == nil {
		o.mu.Lock()
		o.st = work
		o.mu.Unlock()
		if appended {
			notify(o.notify)
		}
	} else {
		o.opts.Logger.Error("outbox group commit failed", "requests", len(group), "err", err)
	}
	var se sqlite3.Error
	if errors.As(err, &se) && se.Code == sqlite3.ErrFull {
		err = fmt.Errorf("%w: the disk is full: %w", ErrFull, err)
	}
	for _, r := range group {
		if err != nil && r.err == nil {
			r.err = fmt.Errorf("outbox: commit: %w", err)
		}
		close(r.done)
	}
}

// apply executes group on work in one transaction; a returned error means nothing was committed.
func (o *SQLite) apply(group []*request, work *state) (appended bool, err error) {
	tx, err := o.db.W.Begin()
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	ins, err := tx.Prepare(`INSERT INTO outbox_records (seq, kind, class, ts, body, size) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return false, err
	}
	defer ins.Close()
	t := &Tx{tx: tx, o: o, st: work, ins: ins}
	before := work.next
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.err = err // never started: safe to report as not written
			continue
		}
		t.refused = false
		switch {
		case r.entries != nil:
			r.first, r.err = t.append(r.entries)
			if r.err != nil && !errors.Is(r.err, ErrFull) {
				return false, fatal(r)
			}
		case r.ack != nil:
			if r.err = t.ack(r.ack.UpTo); r.err != nil && !errors.Is(r.err, ErrAckAhead) {
				return false, fatal(r)
			}
		case r.fn != nil:
			if r.err = t.update(r.fn); r.err != nil && t.broken {
				return false, fatal(r)
			}
		}
		if t.refused {
			if err := t.refuse(); err != nil {
				return false, err
			}
		}
	}
	if _, err := tx.Exec(`UPDATE outbox_meta SET next_seq = ?, evicted = ?, refused = ?, full = ?`,
		work.next, work.evicted, work.refused, work.full); err != nil {
		return false, err
	}
	err = tx.Commit()
	return err == nil && work.next != before, err
}

// fatal moves r's error to the whole group, which commit reports to every request.
func fatal(r *request) error {
	err := r.err
	r.err = nil
	return err
}

// Tx is the writer's transaction as seen by an Update function.
type Tx struct {
	tx      *sql.Tx
	o       *SQLite
	st      *state
	ins     *sql.Stmt
	refused bool // an append was refused with ErrFull
	broken  bool // a savepoint could not be rolled back: the whole group must fail
}

// Exec runs a statement in the transaction.
func (t *Tx) Exec(query string, args ...any) (sql.Result, error) { return t.tx.Exec(query, args...) }

// QueryRow runs a query expected to return at most one row.
func (t *Tx) QueryRow(query string, args ...any) *sql.Row { return t.tx.QueryRow(query, args...) }

// Query runs a query in the transaction.
func (t *Tx) Query(query string, args ...any) (*sql.Rows, error) { return t.tx.Query(query, args...) }

// Append appends one record in the transaction and returns its seq. Command results and alerts
// may use the reserve below the cap.
func (t *Tx) Append(kind string, class wire.Class, body []byte) (uint64, error) {
	e := []Entry{{Kind: kind, Class: class, Body: body}}
	if err := checkAll(e); err != nil {
		return 0, err
	}
	return t.append(e)
}

func (t *Tx) update(fn func(*Tx) error) error {
	snap := *t.st
	if _, err := t.tx.Exec(`SAVEPOINT outbox_update`); err != nil {
		t.broken = true
		return err
	}
	ferr := fn(t)
	if ferr != nil {
		*t.st = snap
		if _, err := t.tx.Exec(`ROLLBACK TO outbox_update`); err != nil {
			t.broken = true
			return errors.Join(ferr, err)
		}
	}
	if _, err := t.tx.Exec(`RELEASE outbox_update`); err != nil {
		t.broken = true
		return errors.Join(ferr, err)
	}
	return ferr
}

// append writes entries with consecutive seqs after evicting telemetry if needed. ErrFull comes
// before any write.
func (t *Tx) append(entries []Entry) (uint64, error) {
	s, o := t.st, &t.o.opts
	var need int64 = -1 << 62
	for _, e := range entries {
		need = max(need, s.need(o, e.Kind, e.Class, 0))
	}
	for _, e := range entries {
		need += size(e.Kind, e.Body)
	}
	if need > 0 {
		if err := t.evict(need); err != nil {
			return 0, err
		}
	}
	first := s.next
	ts := o.Now().UnixMilli()
	for _, e := range entries {
		sz := size(e.Kind, e.Body)
		if _, err := t.ins.Exec(s.next, e.Kind, string(e.Class), ts, e.Body, sz); err != nil {
			return 0, err
		}
		s.next++
		s.depth++
		s.bytes += sz
	}
	if s.oldestTS == 0 {
		s.oldestTS = ts
	}
	return first, nil
}

// evict turns the oldest telemetry into tombstones until need bytes are free, or changes nothing
// and returns ErrFull.
func (t *Tx) evict(need int64) error {
	type victim struct {
		seq  uint64
		body []byte
		sz   int64
	}
	var victims []victim
	var freed int64
	rows, err := t.tx.Query(`SELECT seq, kind, size FROM outbox_records
		WHERE class = 't' AND kind <> 'outbox.evicted' ORDER BY seq`)
	if err != nil {
		return err
	}
	for freed < need && rows.Next() {
		var v victim
		var kind string
		var sz int64
		if err := rows.Scan(&v.seq, &kind, &sz); err != nil {
			rows.Close()
			return err
		}
		body, f := tombstone(kind, sz)
		if f > 0 {
			v.body, v.sz = body, sz-f
			victims = append(victims, v)
			freed += f
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if freed < need {
		t.refused = true
		return fmt.Errorf("%w: %d more bytes needed under the cap of %d", ErrFull, need-freed, t.o.opts.MaxBytes)
	}
	for _, v := range victims {
		if _, err := t.tx.Exec(`UPDATE outbox_records SET kind = ?, body = ?, size = ? WHERE seq = ?`,
			KindEvicted, v.body, v.sz, v.seq); err != nil {
			return err
		}
		t.st.evicted++
	}
	t.st.bytes -= freed
	return nil
}

// refuse counts a refusal and raises the full alert on the first one.
func (t *Tx) refuse() error {
	t.st.refused++
	if t.st.full {
		return nil
	}
	t.st.full = true
	t.o.opts.Logger.Warn("outbox full: refusing records", "maxBytes", t.o.opts.MaxBytes)
	_, err := t.append([]Entry{{Kind: wire.KindAlert, Class: wire.Business, Body: alertBody(AlertFull, &t.o.opts)}})
	if errors.Is(err, ErrFull) {
		return nil // the reserve is used up by earlier alerts; Stats().Full still says so
	}
	return err
}

func (t *Tx) ack(upTo uint64) error {
	s := t.st
	if upTo >= s.next {
		return fmt.Errorf("%w: ack up to %d, last appended %d", ErrAckAhead, upTo, s.next-1)
	}
	var n, b int64
	if err := t.tx.QueryRow(`SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox_records WHERE seq <= ?`, upTo).Scan(&n, &b); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if _, err := t.tx.Exec(`DELETE FROM outbox_records WHERE seq <= ?`, upTo); err != nil {
		return err
	}
	s.depth -= n
	s.bytes -= b
	s.oldestTS = 0
	if s.depth > 0 {
		if err := t.tx.QueryRow(`SELECT ts FROM outbox_records ORDER BY seq LIMIT 1`).Scan(&s.oldestTS); err != nil {
			return err
		}
	}
	if s.cleared(&t.o.opts) {
		s.full = false
		t.o.opts.Logger.Info("outbox has space again")
		if _, err := t.append([]Entry{{Kind: wire.KindAlert, Class: wire.Business, Body: alertBody(AlertCleared, &t.o.opts)}}); err != nil {
			return err
		}
	}
	return nil
}
