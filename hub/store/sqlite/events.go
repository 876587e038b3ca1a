package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/rollup"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// CommitEvents stores new events, in one transaction. The rollups fold them later, in bigger
// groups (FoldRollups): a commit of a few events from a busy channel rewrote a dozen rollup rows
// per event, and every query folds what is pending before it reads, so that none misses an event.
func (s *Store) CommitEvents(ctx context.Context, evs []store.Event) ([]bool, error) {
	if err := store.CheckEvents(evs); err != nil {
		return nil, err
	}
	var news []bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		p := newStmts(tx)
		defer p.close()
		var err error
		news, err = s.commitEvents(ctx, p, evs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return news, nil
}

// eventChunk is how many events one statement looks up or inserts (14 parameters each, well
// under SQLite's limit), so that a group of thousands costs a few hundred statements, not one
// per event.
const eventChunk = 64

// commitEvents is CommitEvents inside a transaction (also the effect of a kiosk's event record).
// This process is the database's only writer, so what the lookup finds does not change before
// the insert.
func (s *Store) commitEvents(ctx context.Context, p *stmts, evs []store.Event) ([]bool, error) {
	s.unfolded.Store(true) // inside the writer's transaction: a fold that clears it runs before or after this one
	news := make([]bool, len(evs))
	type key struct{ client, id string }
	for start := 0; start < len(evs); start += eventChunk {
		part := evs[start:min(start+eventChunk, len(evs))]
		have := map[key]bool{}
		args := make([]any, 0, 2*len(part))
		for i := range part {
			args = append(args, part[i].ClientID, part[i].ID)
		}
		rows, err := p.query(ctx, `SELECT client_id, id FROM events WHERE (client_id, id) IN (VALUES `+
			marks("(?, ?)", len(part))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: look up events: %w", err)
		}
		for rows.Next() {
			var k key
			if err := rows.Scan(&k.client, &k.id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: look up events: %w", err)
			}
			have[k] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: look up events: %w", err)
		}
		args = args[:0]
		n := 0
		for i := range part {
			k := key{part[i].ClientID, part[i].ID}
			if have[k] {
				continue
			}
			have[k] = true // a later event with the same key is a duplicate
			news[start+i] = true
			args = append(args, sqlrow.EventArgs(&part[i])...)
			n++
		}
		if n == 0 {
			continue
		}
		if _, err := p.exec(ctx, `INSERT INTO events (`+sqlrow.EventCols+`) VALUES `+
			marks("(NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", n), args...); err != nil {
			return nil, fmt.Errorf("store: insert events: %w", err)
		}
	}
	return news, nil
}

// foldChunk is how many events one fold transaction takes: a few milliseconds of the writer, so
// that commits waiting for it are not held up long.
const foldChunk = 4096

// FoldRollups folds the events stored since the last fold into the rollups, a transaction per
// foldChunk events, until none is left. Each transaction moves rollup_fold past the events it
// folded, so that each event is folded exactly once, whatever fails or crashes (the next fold,
// at the latest the first query after a restart, takes up what is left). A fold of many
// events rewrites each rollup row once for all of them: the hub's event room runs it every few
// hundred milliseconds.
func (s *Store) FoldRollups(ctx context.Context) error {
	// One fold at a time: a query must not read the rollups while another fold holds the events
	// it waits for.
	s.foldMu.Lock()
	defer s.foldMu.Unlock()
	for s.unfolded.Swap(false) {
		var more bool
		err := s.tx(ctx, func(tx *sql.Tx) error {
			var err error
			more, err = foldEvents(ctx, tx)
			return err
		})
		if err != nil || more {
			s.unfolded.Store(true)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// foldEvents folds up to foldChunk events past rollup_fold into the rollups and reports whether
// there may be more.
func foldEvents(ctx context.Context, tx *sql.Tx) (bool, error) {
	var after int64
	if err := tx.QueryRowContext(ctx, `SELECT seq FROM rollup_fold`).Scan(&after); err != nil {
		return false, fmt.Errorf("store: fold events: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+sqlrow.EventCols+` FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, after, foldChunk)
	if err != nil {
		return false, fmt.Errorf("store: fold events: %w", err)
	}
	evs, err := sqlrow.Events(rows)
	rows.Close()
	if err != nil || len(evs) == 0 {
		return false, err
	}
	p := newStmts(tx)
	defer p.close()
	d := rollup.Of(evs)
	if err := mergeCells(ctx, p, d); err != nil {
		return false, err
	}
	if err := addUses(ctx, p, d.Uses); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE rollup_fold SET seq = ?`, evs[len(evs)-1].Seq); err != nil {
		return false, fmt.Errorf("store: fold events: %w", err)
	}
	return len(evs) == foldChunk, nil
}

// marks returns n copies of group, comma-separated.
func marks(group string, n int) string {
	return strings.TrimSuffix(strings.Repeat(group+", ", n), ", ")
}

// cellChunk is how many rollup cells one statement reads or writes (7 parameters each).
const cellChunk = 128

// mergeCells folds a delta into the rollups: per chunk of cells, one read of those that exist
// and one write of them all, merged.
func mergeCells(ctx context.Context, p *stmts, d rollup.Delta) error {
	keys := d.Keys()
	for start := 0; start < len(keys); start += cellChunk {
		part := keys[start:min(start+cellChunk, len(keys))]
		args := make([]any, 0, 7*len(part))
		for _, k := range part {
			args = append(args, k.Kind, k.K1, k.K2, k.K3, k.Bucket)
		}
		rows, err := p.query(ctx, `SELECT kind, k1, k2, k3, bucket, events, citizens FROM rollups WHERE (kind, k1, k2, k3, bucket) IN (VALUES `+
			marks("(?, ?, ?, ?, ?)", len(part))+`)`, args...)
		if err != nil {
			return fmt.Errorf("store: rollups: %w", err)
		}
		for rows.Next() {
			var r rollup.Row
			if err := rows.Scan(&r.Kind, &r.K1, &r.K2, &r.K3, &r.Bucket, &r.Events, &r.Citizens); err != nil {
				rows.Close()
				return fmt.Errorf("store: rollups: %w", err)
			}
			c := d.Cells[r.Key]
			sk, err := rollup.DecodeSketch(r.Citizens)
			if err != nil {
				rows.Close()
				return fmt.Errorf("store: rollup %v: %w", r.Key, err)
			}
			sk.Merge(c.Citizens)
			c.Citizens, c.Events = sk, c.Events+r.Events
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: rollups: %w", err)
		}
		args = args[:0]
		for _, k := range part {
			c := d.Cells[k]
			args = append(args, k.Kind, k.K1, k.K2, k.K3, k.Bucket, c.Events, c.Citizens.Encode())
		}
		if _, err := p.exec(ctx, `INSERT OR REPLACE INTO rollups (kind, k1, k2, k3, bucket, events, citizens) VALUES `+
			marks("(?, ?, ?, ?, ?, ?, ?)", len(part)), args...); err != nil {
			return fmt.Errorf("store: rollups: %w", err)
		}
	}
	return nil
}

// addUses records first uses of services and counts the co-use pairs they add.
func addUses(ctx context.Context, p *stmts, uses []rollup.Use) error {
	byPseudonym := map[string][]rollup.Use{}
	for _, u := range uses {
		byPseudonym[u.Pseudonym] = append(byPseudonym[u.Pseudonym], u)
	}
	pairs := map[[2]string]int64{}
	for _, ps := range slices.Sorted(maps.Keys(byPseudonym)) {
		old, err := servicesUsed(ctx, p.tx, ps)
		if err != nil {
			return err
		}
		var added []string
		for _, u := range byPseudonym[ps] {
			res, err := p.exec(ctx, `INSERT INTO service_use (pseudonym, service, first_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
				u.Pseudonym, u.Service, u.At)
			if err != nil {
				return fmt.Errorf("store: service use: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				added = append(added, u.Service)
			}
		}
		for _, pr := range rollup.CoUsePairs(old, added) {
			pairs[pr]++
		}
	}
	for _, pr := range slices.SortedFunc(maps.Keys(pairs), comparePair) {
		if _, err := p.exec(ctx, `INSERT INTO co_use (a, b, citizens) VALUES (?, ?, ?)
			ON CONFLICT (a, b) DO UPDATE SET citizens = co_use.citizens + excluded.citizens`, pr[0], pr[1], pairs[pr]); err != nil {
			return fmt.Errorf("store: co-use: %w", err)
		}
	}
	return nil
}

func comparePair(a, b [2]string) int {
	if c := strings.Compare(a[0], b[0]); c != 0 {
		return c
	}
	return strings.Compare(a[1], b[1])
}

func servicesUsed(ctx context.Context, q querier, pseudonym string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT service FROM service_use WHERE pseudonym = ? ORDER BY service`, pseudonym)
	if err != nil {
		return nil, fmt.Errorf("store: services used: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var sv string
		if err := rows.Scan(&sv); err != nil {
			return nil, fmt.Errorf("store: services used: %w", err)
		}
		out = append(out, sv)
	}
	return out, rows.Err()
}

// ServicesUsed returns the services a pseudonym used.
func (s *Store) ServicesUsed(ctx context.Context, pseudonym string) ([]string, error) {
	if err := s.FoldRollups(ctx); err != nil {
		return nil, err
	}
	return servicesUsed(ctx, s.db.R, pseudonym)
}

// CoUsed returns the services most used by those who used one of used.
func (s *Store) CoUsed(ctx context.Context, used []string, minCitizens, limit int) ([]store.CoUse, error) {
	if err := s.FoldRollups(ctx); err != nil {
		return nil, err
	}
	out := []store.CoUse{}
	if len(used) == 0 {
		return out, nil
	}
	if limit <= 0 {
		limit = 10
	}
	marks := strings.TrimSuffix(strings.Repeat("?,", len(used)), ",")
	args := make([]any, 0, 2*len(used)+2)
	for _, u := range used {
		args = append(args, u)
	}
	args = append(args, args...)
	args = append(args, minCitizens, limit)
	rows, err := s.db.R.QueryContext(ctx, `SELECT a, b, citizens FROM co_use WHERE a IN (`+marks+`) AND b NOT IN (`+marks+`)
		AND citizens >= ? ORDER BY citizens DESC, b, a LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: co-use: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c store.CoUse
		if err := rows.Scan(&c.From, &c.To, &c.Citizens); err != nil {
			return nil, fmt.Errorf("store: co-use: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ListEvents returns events in insertion order.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT `+sqlrow.EventCols+` FROM events WHERE seq > ?
		AND (? = '' OR pseudonym = ?) AND (? = '' OR type = ?) ORDER BY seq LIMIT ?`,
		f.AfterSeq, f.Pseudonym, f.Pseudonym, f.Type, f.Type, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: list events: %w", err)
	}
	defer rows.Close()
	out, err := sqlrow.Events(rows)
	if err != nil {
		return nil, fmt.Errorf("store: list events: %w", err)
	}
	return out, nil
}

// purgeChunk bounds the rows one purge transaction deletes, so that ingestion waits for the
// writer at most a few milliseconds at a time.
const purgeChunk = 5000

// PurgeEvents deletes raw events received before t, a chunk per transaction.
func (s *Store) PurgeEvents(ctx context.Context, before time.Time) (int64, error) {
	if err := s.FoldRollups(ctx); err != nil { // the rollups keep what is purged
		return 0, err
	}
	var total int64
	for {
		var n int64
		err := s.tx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE recv_ts < ? LIMIT ?)`,
				ts(before), purgeChunk)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("store: purge events: %w", err)
		}
		total += n
		if n < purgeChunk {
			return total, nil
		}
	}
}

// scanRollups calls add for every rollup row of sc.
func (s *Store) scanRollups(ctx context.Context, sc rollup.Scan, add func(rollup.Row)) error {
	q, args := sc.SQL(func(int) string { return "?" })
	rows, err := s.db.R.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("store: rollups: %w", err)
	}
	defer rows.Close()
	r := rollup.Row{Key: rollup.Key{Kind: sc.Kind}}
	var sketch sql.RawBytes // the driver's bytes, not a copy: add only reads them (rollup.ScanFunc)
	for rows.Next() {
		if err := rows.Scan(&r.K1, &r.K2, &r.K3, &r.Bucket, &r.Events, &sketch); err != nil {
			return fmt.Errorf("store: rollups: %w", err)
		}
		r.Citizens = sketch
		add(r)
	}
	return rows.Err()
}

// Heat answers a heat query from the rollups.
func (s *Store) Heat(ctx context.Context, q store.HeatQuery) ([]store.HeatCell, error) {
	if err := s.FoldRollups(ctx); err != nil {
		return nil, err
	}
	return rollup.QueryHeat(ctx, s.scanRollups, q)
}

// Funnel answers a funnel query from the rollups.
func (s *Store) Funnel(ctx context.Context, q store.FunnelQuery) ([]store.FunnelStep, error) {
	if err := s.FoldRollups(ctx); err != nil {
		return nil, err
	}
	return rollup.QueryFunnel(ctx, s.scanRollups, q)
}

// SearchMisses answers a search-miss query from the rollups.
func (s *Store) SearchMisses(ctx context.Context, q store.MissQuery) ([]store.SearchMiss, error) {
	if err := s.FoldRollups(ctx); err != nil {
		return nil, err
	}
	return rollup.QueryMisses(ctx, s.scanRollups, q)
}

// RekeyPseudonym re-keys a pseudonym's events and drops its service use.
func (s *Store) RekeyPseudonym(ctx context.Context, old, fresh string) error {
	if err := s.FoldRollups(ctx); err != nil { // the rollups keep what she did, under old
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE events SET pseudonym = ? WHERE pseudonym = ?`, fresh, old); err != nil {
			return fmt.Errorf("store: rekey pseudonym: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM service_use WHERE pseudonym = ?`, old); err != nil {
			return fmt.Errorf("store: rekey pseudonym: %w", err)
		}
		return nil
	})
}
