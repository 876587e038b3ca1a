package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// counts are the sizes of the soak scenarios: KF_SOAK=1 selects the full counts (make soak);
// otherwise small ones that keep the e2e package within a few minutes (make test). KF_SOAK_SEED
// sets the first network-fault seed, to replay a failing schedule.
type counts struct {
	AgentKills   int           // kill -9 cycles of an agent during upload
	HubKills     int           // kill -9 cycles of the hub during ingest
	Seeds        int           // network fault schedules
	Faults       int           // faults per schedule
	Records      int           // records pushed through each schedule
	OfflineHours int           // simulated hours offline
	LongCmds     int           // commands queued while offline that must run once
	ShortCmds    int           // commands queued while offline that expire before reconnect
	FloodConns   int           // connections of each flood of issue 16 (slow bodies, half-sent CONNECTs)
	FloodAgents  int           // fleetsim kiosks syncing under the floods
	FloodWarm    int           // records each kiosk has sent on average before the fleet alone is measured
	FloodBase    time.Duration // how long the fleet alone is measured (the floods' baseline)
	FloodFor     time.Duration
	FirstSeed    uint64

	// The cluster scenario: simulated kiosks over three hub replicas on PostgreSQL, records per
	// second each, and a replica killed every ClusterEvery, ClusterKills times.
	ClusterAgents int
	ClusterRate   float64
	ClusterKills  int
	ClusterEvery  time.Duration
}

func soakCounts() counts {
	c := counts{AgentKills: 20, HubKills: 10, Seeds: 1, Faults: 6, Records: 600, OfflineHours: 6, LongCmds: 3, ShortCmds: 2,
		FloodConns: 50, FloodAgents: 20, FloodWarm: 3, FloodBase: 2 * time.Second, FloodFor: 10 * time.Second, FirstSeed: 1,
		ClusterAgents: 20, ClusterRate: 20, ClusterKills: 2, ClusterEvery: 2 * time.Second}
	if os.Getenv("KF_SOAK") == "1" {
		c = counts{AgentKills: 200, HubKills: 100, Seeds: 10, Faults: 20, Records: 3000, OfflineHours: 72, LongCmds: 20, ShortCmds: 10,
			FloodConns: 1000, FloodAgents: 1000, FloodWarm: 20, FloodBase: 30 * time.Second, FloodFor: 10 * time.Minute, FirstSeed: 1,
			ClusterAgents: 300, ClusterRate: 10, ClusterKills: 10, ClusterEvery: 15 * time.Second}
	}
	if s, err := strconv.ParseUint(os.Getenv("KF_SOAK_SEED"), 10, 64); err == nil {
		c.FirstSeed = s
	}
	// A shorter flood soak, e.g. KF_SOAK=1 KF_SOAK_FLOOD_FOR=60s KF_SOAK_FLOOD_AGENTS=200.
	if d, err := time.ParseDuration(os.Getenv("KF_SOAK_FLOOD_FOR")); err == nil {
		c.FloodFor = d
	}
	if n, err := strconv.Atoi(os.Getenv("KF_SOAK_FLOOD_AGENTS")); err == nil {
		c.FloodAgents = n
	}
	return c
}

// outboxState is what an agent's outbox says it appended (seq 1..Next-1 of Epoch) and what it
// still holds (Pending: not yet acked; the outbox deletes a record only on the hub's ack).
type outboxState struct {
	Epoch   string
	Next    uint64
	Pending []uint64
}

// acked is the agent's ack watermark: every seq up to it was deleted on the hub's word.
func (o outboxState) acked() uint64 {
	if len(o.Pending) > 0 {
		return o.Pending[0] - 1
	}
	return o.Next - 1
}

// readOutbox reads an agent's outbox read-only; the agent may be running (WAL readers do not
// block its writer).
func readOutbox(t testing.TB, dir string) outboxState {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "outbox.db")+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var o outboxState
	if err := tx.QueryRowContext(ctx, `SELECT epoch, next_seq FROM outbox_meta WHERE id = 1`).Scan(&o.Epoch, &o.Next); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq FROM outbox_records ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s uint64
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		o.Pending = append(o.Pending, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return o
}

// tally is the outcome of one device's run: what the agent appended (Sent), what it was told is
// safe (Acked), what the hub stored of it (Stored), what is still waiting in the outbox and not
// yet on the hub (Waiting), and the failures: Lost (neither on the hub nor in the outbox any
// more; always acked, since the outbox deletes only on ack), Duplicated (extra copies of a seq on
// the hub), OutOfOrder (a seq listed after a higher one) and Foreign (records of this device the
// outbox never appended: another epoch, or a seq beyond what it appended).
type tally struct {
	Sent, Acked, Stored, Waiting          int
	Lost, Duplicated, OutOfOrder, Foreign int
	LostSeqs                              []uint64 // the first few
}

func (c tally) ok() bool {
	return c.Lost == 0 && c.Duplicated == 0 && c.OutOfOrder == 0 && c.Foreign == 0
}

func (c tally) String() string {
	return fmt.Sprintf("sent=%d acked=%d stored=%d waiting=%d lost=%d duplicated=%d order-violations=%d foreign=%d",
		c.Sent, c.Acked, c.Stored, c.Waiting, c.Lost, c.Duplicated, c.OutOfOrder, c.Foreign)
}

// add sums tallies of several devices.
func (c tally) add(d tally) tally {
	return tally{c.Sent + d.Sent, c.Acked + d.Acked, c.Stored + d.Stored, c.Waiting + d.Waiting,
		c.Lost + d.Lost, c.Duplicated + d.Duplicated, c.OutOfOrder + d.OutOfOrder, c.Foreign + d.Foreign,
		append(c.LostSeqs, d.LostSeqs...)}
}

// verify compares an agent's outbox with the records the hub lists for that device, in the
// hub's per-device order.
func verify(ob outboxState, recs []fleet.Record) tally {
	c := tally{Sent: int(ob.Next - 1), Acked: int(ob.acked())}
	seen := make(map[uint64]bool, len(recs))
	var last uint64
	for _, r := range recs {
		switch {
		case r.Epoch != ob.Epoch || r.Seq == 0 || r.Seq >= ob.Next:
			c.Foreign++
			continue
		case seen[r.Seq]:
			c.Duplicated++
		case r.Seq < last:
			c.OutOfOrder++
		}
		seen[r.Seq] = true
		last = max(last, r.Seq)
	}
	c.Stored = len(seen)
	pending := make(map[uint64]bool, len(ob.Pending))
	for _, s := range ob.Pending {
		pending[s] = true
		if !seen[s] {
			c.Waiting++
		}
	}
	for s := uint64(1); s < ob.Next; s++ {
		if !seen[s] && !pending[s] {
			c.Lost++
			if len(c.LostSeqs) < 10 {
				c.LostSeqs = append(c.LostSeqs, s)
			}
		}
	}
	return c
}

// check verifies one device after its agent stopped, logs the figures and fails the test on any
// loss, duplicate, order violation or foreign record; waitingOK allows records still in the
// outbox (not drained).
func (h *hub) check(name, dir, id string, waitingOK bool) tally {
	h.t.Helper()
	c := verify(readOutbox(h.t, dir), h.records(id, ""))
	h.t.Logf("%s %s: %s", name, id, c)
	if !c.ok() {
		h.t.Errorf("%s %s: harness found failures: %s (first lost seqs %v)", name, id, c, c.LostSeqs)
	}
	if c.Waiting > 0 && !waitingOK {
		h.t.Errorf("%s %s: %d records never reached the hub", name, id, c.Waiting)
	}
	return c
}

// summary prints the one-line result of a scenario.
func summary(t *testing.T, scenario string, c tally, extra string) {
	t.Helper()
	verdict := "PASS"
	if !c.ok() || c.Waiting > 0 || t.Failed() {
		verdict = "FAIL"
	}
	t.Logf("SOAK %s %s: %s%s", verdict, scenario, c, extra)
}

// drain runs an agent without load until its outbox is empty (everything acked) or d passes,
// then stops it with SIGTERM. It reports whether the outbox emptied.
func drain(t *testing.T, name, dir string, d time.Duration, args ...string) bool {
	t.Helper()
	a := startAgent(t, name, dir, args...)
	defer a.stop()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if a.exited() {
			t.Fatalf("%s exited while draining", name)
		}
		if len(readOutbox(t, dir).Pending) == 0 {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// The verification itself must fail when records are lost, doubled or reordered: run it over
// the hub's list of a perfect run, and over the same list with one record dropped, one
// duplicated and two swapped.
func TestSoakVerifyDetects(t *testing.T) {
	ob := outboxState{Epoch: "e1", Next: 11}
	var good []fleet.Record
	for s := range uint64(10) {
		good = append(good, fleet.Record{Epoch: "e1", Seq: s + 1})
	}
	if c := verify(ob, good); !c.ok() || c.Stored != 10 || c.Acked != 10 || c.Sent != 10 {
		t.Fatalf("perfect run: %s", c)
	}
	mutate := func(f func([]fleet.Record) []fleet.Record) []fleet.Record { return f(slices.Clone(good)) }
	cases := []struct {
		name string
		ob   outboxState
		recs []fleet.Record
		want func(tally) bool
	}{
		{"drop acked", ob, mutate(func(r []fleet.Record) []fleet.Record { return slices.Delete(r, 4, 5) }),
			func(c tally) bool { return c.Lost == 1 && c.LostSeqs[0] == 5 }},
		{"duplicate", ob, mutate(func(r []fleet.Record) []fleet.Record { return slices.Insert(r, 3, r[2]) }),
			func(c tally) bool { return c.Duplicated == 1 && c.Lost == 0 }},
		{"swap", ob, mutate(func(r []fleet.Record) []fleet.Record { r[6], r[7] = r[7], r[6]; return r }),
			func(c tally) bool { return c.OutOfOrder == 1 && c.Lost == 0 }},
		{"other epoch", ob, mutate(func(r []fleet.Record) []fleet.Record { r[0].Epoch = "e0"; return r }),
			func(c tally) bool { return c.Foreign == 1 && c.Lost == 1 }},
		{"beyond appended", ob, append(slices.Clone(good), fleet.Record{Epoch: "e1", Seq: 11}),
			func(c tally) bool { return c.Foreign == 1 }},
	}
	for _, tc := range cases {
		c := verify(tc.ob, tc.recs)
		if c.ok() || !tc.want(c) {
			t.Errorf("%s: verify reported %s (lost %v)", tc.name, c, c.LostSeqs)
		}
	}
	// A record missing on the hub but still in the outbox is waiting, not lost.
	waiting := outboxState{Epoch: "e1", Next: 11, Pending: []uint64{10}}
	if c := verify(waiting, good[:9]); !c.ok() || c.Waiting != 1 || c.Acked != 9 {
		t.Errorf("unacked record not yet on the hub: %s", c)
	}
}
