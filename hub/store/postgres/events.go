package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/rollup"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// CommitEvents stores new events and folds them into the rollups, in one transaction.
func (s *Store) CommitEvents(ctx context.Context, evs []store.Event) ([]bool, error) {
	if err := store.CheckEvents(evs); err != nil {
		return nil, err
	}
	var news []bool
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		news, err = commitEvents(ctx, tx, evs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return news, nil
}

const (
	insertEvents = `INSERT INTO events (client_id, id, v, type, channel, pseudonym, session, service, region,
			kiosk_id, site_id, device_ts, recv_ts, props)
		SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::bytea[])
		ON CONFLICT (client_id, id) DO NOTHING
		RETURNING client_id, id`
	// Rollup rows are created (in key order), then locked in key order, read, and written back
	// merged: replicas folding events into the same cells take turns.
	createCells = `INSERT INTO rollups (kind, k1, k2, k3, bucket, events, citizens)
		SELECT k.kind, k.k1, k.k2, k.k3, k.bucket, 0, '' FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
			AS k(kind, k1, k2, k3, bucket)
		ORDER BY k.kind COLLATE "C", k.k1 COLLATE "C", k.k2 COLLATE "C", k.k3 COLLATE "C", k.bucket
		ON CONFLICT DO NOTHING`
	lockCells = `SELECT r.kind, r.k1, r.k2, r.k3, r.bucket, r.events, r.citizens FROM rollups r
		JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) AS k(kind, k1, k2, k3, bucket)
			ON r.kind = k.kind AND r.k1 = k.k1 AND r.k2 = k.k2 AND r.k3 = k.k3 AND r.bucket = k.bucket
		ORDER BY r.kind COLLATE "C", r.k1 COLLATE "C", r.k2 COLLATE "C", r.k3 COLLATE "C", r.bucket FOR UPDATE OF r`
	saveCells = `UPDATE rollups r SET events = u.events, citizens = u.citizens
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bytea[])
			AS u(kind, k1, k2, k3, bucket, events, citizens)
		WHERE r.kind = u.kind AND r.k1 = u.k1 AND r.k2 = u.k2 AND r.k3 = u.k3 AND r.bucket = u.bucket`
	// A pseudonym's uses are serialized by an advisory lock on its hash, so that two replicas
	// adding uses of one citizen at once count every pair once.
	lockPseudonyms = `SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtextextended(p, 0) AS h
		FROM unnest($1::text[]) AS p ORDER BY 1) AS s`
	usesOf     = `SELECT pseudonym, service FROM service_use WHERE pseudonym = ANY($1)`
	insertUses = `INSERT INTO service_use (pseudonym, service, first_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) ON CONFLICT DO NOTHING RETURNING pseudonym, service`
	addPairs = `INSERT INTO co_use (a, b, citizens)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(a, b, n) ORDER BY u.a COLLATE "C", u.b COLLATE "C"
		ON CONFLICT (a, b) DO UPDATE SET citizens = co_use.citizens + excluded.citizens`
)

// commitEvents is CommitEvents inside a transaction (also the effect of kiosks' event records).
func commitEvents(ctx context.Context, tx pgx.Tx, evs []store.Event) ([]bool, error) {
	news := make([]bool, len(evs))
	if len(evs) == 0 {
		return news, nil
	}
	cols := make([][]any, 14)
	for i := range evs {
		for j, v := range sqlrow.EventArgs(&evs[i]) {
			cols[j] = append(cols[j], v)
		}
	}
	args := make([]any, len(cols))
	for j, c := range cols {
		args[j] = typed(c)
	}
	type key struct{ client, id string }
	inserted := map[key]bool{}
	rows, _ := tx.Query(ctx, insertEvents, args...)
	var k key
	if _, err := pgx.ForEachRow(rows, []any{&k.client, &k.id}, func() error { inserted[k] = true; return nil }); err != nil {
		return nil, fmt.Errorf("store: insert events: %w", err)
	}
	fresh := make([]store.Event, 0, len(inserted))
	for i, e := range evs {
		if k := (key{e.ClientID, e.ID}); inserted[k] {
			news[i] = true
			delete(inserted, k) // a later event with the same key is a duplicate
			fresh = append(fresh, e)
		}
	}
	d := rollup.Of(fresh)
	if err := mergeCells(ctx, tx, d); err != nil {
		return nil, err
	}
	if err := addUses(ctx, tx, d.Uses); err != nil {
		return nil, err
	}
	return news, nil
}

// typed converts a column of values gathered as []any to a typed slice pgx encodes as an array.
func typed(c []any) any {
	switch c[0].(type) {
	case string:
		return conv[string](c)
	case int:
		return conv[int](c)
	case int64:
		return conv[int64](c)
	default:
		return conv[[]byte](c)
	}
}

func conv[T any](c []any) []T {
	out := make([]T, len(c))
	for i, v := range c {
		if v != nil {
			out[i] = v.(T)
		}
	}
	return out
}

func mergeCells(ctx context.Context, tx pgx.Tx, d rollup.Delta) error {
	if len(d.Cells) == 0 {
		return nil
	}
	keys := d.Keys()
	var kinds, k1s, k2s, k3s []string
	var buckets []int64
	for _, k := range keys {
		kinds, k1s, k2s, k3s, buckets = append(kinds, k.Kind), append(k1s, k.K1), append(k2s, k.K2), append(k3s, k.K3), append(buckets, k.Bucket)
	}
	var events []int64
	var sketches [][]byte
	b := &pgx.Batch{}
	b.Queue(createCells, kinds, k1s, k2s, k3s, buckets)
	b.Queue(lockCells, kinds, k1s, k2s, k3s, buckets).Query(func(rows pgx.Rows) error {
		var r rollup.Row
		var n int64
		var sk []byte
		_, err := pgx.ForEachRow(rows, []any{&r.Kind, &r.K1, &r.K2, &r.K3, &r.Bucket, &n, &sk}, func() error {
			add := d.Cells[r.Key]
			if add == nil {
				return fmt.Errorf("store: rollup %v not asked for", r.Key)
			}
			s, err := rollup.DecodeSketch(sk)
			if err != nil {
				return fmt.Errorf("store: rollup %v: %w", r.Key, err)
			}
			s.Merge(add.Citizens)
			add.Events += n
			add.Citizens = s
			return nil
		})
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("store: rollups: %w", err)
	}
	for _, k := range keys {
		c := d.Cells[k]
		events, sketches = append(events, c.Events), append(sketches, c.Citizens.Encode())
	}
	if _, err := tx.Exec(ctx, saveCells, kinds, k1s, k2s, k3s, buckets, events, sketches); err != nil {
		return fmt.Errorf("store: rollups: %w", err)
	}
	return nil
}

func addUses(ctx context.Context, tx pgx.Tx, uses []rollup.Use) error {
	if len(uses) == 0 {
		return nil
	}
	var ps, svs []string
	var ats []int64
	for _, u := range uses {
		ps, svs, ats = append(ps, u.Pseudonym), append(svs, u.Service), append(ats, u.At)
	}
	old := map[string][]string{}
	added := map[string][]string{}
	b := &pgx.Batch{}
	b.Queue(lockPseudonyms, ps)
	b.Queue(usesOf, ps).Query(func(rows pgx.Rows) error {
		var p, sv string
		_, err := pgx.ForEachRow(rows, []any{&p, &sv}, func() error { old[p] = append(old[p], sv); return nil })
		return err
	})
	b.Queue(insertUses, ps, svs, ats).Query(func(rows pgx.Rows) error {
		var p, sv string
		_, err := pgx.ForEachRow(rows, []any{&p, &sv}, func() error { added[p] = append(added[p], sv); return nil })
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("store: service use: %w", err)
	}
	pairs := map[[2]string]int64{}
	for p, a := range added {
		for _, pr := range rollup.CoUsePairs(old[p], a) {
			pairs[pr]++
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	var as, bs []string
	var ns []int64
	for _, pr := range slices.SortedFunc(maps.Keys(pairs), func(x, y [2]string) int {
		return strings.Compare(x[0]+"\x00"+x[1], y[0]+"\x00"+y[1])
	}) {
		as, bs, ns = append(as, pr[0]), append(bs, pr[1]), append(ns, pairs[pr])
	}
	if _, err := tx.Exec(ctx, addPairs, as, bs, ns); err != nil {
		return fmt.Errorf("store: co-use: %w", err)
	}
	return nil
}

// ServicesUsed returns the services a pseudonym used.
func (s *Store) ServicesUsed(ctx context.Context, pseudonym string) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `SELECT service FROM service_use WHERE pseudonym = $1 ORDER BY service COLLATE "C"`, pseudonym)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: services used: %w", err)
	}
	return append([]string{}, out...), nil
}

// CoUsed returns the services most used by those who used one of used.
func (s *Store) CoUsed(ctx context.Context, used []string, minCitizens, limit int) ([]store.CoUse, error) {
	out := []store.CoUse{}
	if len(used) == 0 {
		return out, nil
	}
	if limit <= 0 {
		limit = 10
	}
	rows, _ := s.pool.Query(ctx, `SELECT a, b, citizens FROM co_use WHERE a = ANY($1) AND NOT b = ANY($1)
		AND citizens >= $2 ORDER BY citizens DESC, b COLLATE "C", a COLLATE "C" LIMIT $3`, used, minCitizens, limit)
	var c store.CoUse
	_, err := pgx.ForEachRow(rows, []any{&c.From, &c.To, &c.Citizens}, func() error { out = append(out, c); return nil })
	if err != nil {
		return nil, fmt.Errorf("store: co-use: %w", err)
	}
	return out, nil
}

// ListEvents returns events in insertion order.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	rows, err := s.pool.Query(ctx, `SELECT `+sqlrow.EventCols+` FROM events WHERE seq > $1
		AND ($2 = '' OR pseudonym = $2) AND ($3 = '' OR type = $3) ORDER BY seq LIMIT $4`,
		f.AfterSeq, f.Pseudonym, f.Type, f.Limit)
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

// purgeChunk bounds the rows one purge transaction deletes.
const purgeChunk = 10000

// PurgeEvents deletes raw events received before t, a chunk per transaction.
func (s *Store) PurgeEvents(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE recv_ts < $1 LIMIT $2)`,
			ts(before), purgeChunk)
		if err != nil {
			return total, fmt.Errorf("store: purge events: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < purgeChunk {
			return total, nil
		}
	}
}

// scanRollups calls add for every rollup row of sc.
func (s *Store) scanRollups(ctx context.Context, sc rollup.Scan, add func(rollup.Row)) error {
	q, args := sc.SQL(func(n int) string { return "$" + strconv.Itoa(n) })
	rows, _ := s.pool.Query(ctx, q, args...)
	r := rollup.Row{Key: rollup.Key{Kind: sc.Kind}}
	_, err := pgx.ForEachRow(rows, []any{&r.K1, &r.K2, &r.K3, &r.Bucket, &r.Events, &r.Citizens}, func() error {
		add(r)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: rollups: %w", err)
	}
	return nil
}

// Heat answers a heat query from the rollups.
func (s *Store) Heat(ctx context.Context, q store.HeatQuery) ([]store.HeatCell, error) {
	return rollup.QueryHeat(ctx, s.scanRollups, q)
}

// Funnel answers a funnel query from the rollups.
func (s *Store) Funnel(ctx context.Context, q store.FunnelQuery) ([]store.FunnelStep, error) {
	return rollup.QueryFunnel(ctx, s.scanRollups, q)
}

// SearchMisses answers a search-miss query from the rollups.
func (s *Store) SearchMisses(ctx context.Context, q store.MissQuery) ([]store.SearchMiss, error) {
	return rollup.QueryMisses(ctx, s.scanRollups, q)
}

// RekeyPseudonym re-keys a pseudonym's events and drops its service use.
func (s *Store) RekeyPseudonym(ctx context.Context, old, fresh string) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE events SET pseudonym = $1 WHERE pseudonym = $2`, fresh, old); err != nil {
			return fmt.Errorf("store: rekey pseudonym: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM service_use WHERE pseudonym = $1`, old); err != nil {
			return fmt.Errorf("store: rekey pseudonym: %w", err)
		}
		return nil
	})
}
