package outbox_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/outbox"
	"github.com/kioskfleet/kioskfleet/agent/outbox/outboxtest"
	"github.com/kioskfleet/kioskfleet/pkg/sqlitex"
	"github.com/kioskfleet/kioskfleet/pkg/strictjson"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func open(t testing.TB, path string, opts outbox.Options) *outbox.SQLite {
	t.Helper()
	ob, err := outbox.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return ob
}

func TestRestartKeepsState(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "outbox.db")
	opts := outbox.Options{MaxBytes: 8 << 10, AlertReserve: 1 << 10}
	ob := open(t, path, opts)
	epoch := ob.Epoch()
	for i := 1; i <= 30; i++ {
		if _, err := ob.Append(ctx, "tele", wire.Telemetry, outboxtest.Body(i, 300)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ob.Ack(ctx, epoch, 10); err != nil {
		t.Fatal(err)
	}
	before, beforeRecs := ob.Stats(), outboxtest.All(t, ob)
	if before.Evicted == 0 {
		t.Fatalf("expected evictions: %+v", before)
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}

	ob = open(t, path, opts)
	defer ob.Close()
	if ob.Epoch() != epoch || ob.NextSeq() != 31 {
		t.Fatalf("after restart: epoch %q next %d, want %q 31", ob.Epoch(), ob.NextSeq(), epoch)
	}
	after := ob.Stats()
	after.OldestAge, before.OldestAge = 0, 0
	if after != before {
		t.Fatalf("stats changed across restart:\n%+v\n%+v", before, after)
	}
	recs := outboxtest.All(t, ob)
	if fmt.Sprint(recs) != fmt.Sprint(beforeRecs) {
		t.Fatal("pending records changed across restart")
	}
	outboxtest.Contiguous(t, recs, 11)
	select {
	case <-ob.Notify():
	default:
		t.Fatal("reopened outbox with pending records does not notify the uploader")
	}
	if err := ob.Ack(ctx, epoch, 30); err != nil {
		t.Fatal(err)
	}
	ob.Close()
	ob = open(t, path, opts)
	defer ob.Close()
	if n := len(outboxtest.All(t, ob)); n != 0 || ob.NextSeq() != 31 {
		t.Fatalf("after acking all and restarting: %d pending, next %d", n, ob.NextSeq())
	}
}

func TestNewDiskNewEpoch(t *testing.T) {
	dir := t.TempDir()
	a := open(t, filepath.Join(dir, "a.db"), outbox.Options{})
	defer a.Close()
	b := open(t, filepath.Join(dir, "b.db"), outbox.Options{})
	defer b.Close()
	if a.Epoch() == b.Epoch() || len(a.Epoch()) != 16 {
		t.Fatalf("epochs %q and %q", a.Epoch(), b.Epoch())
	}
}

func TestUpdateRollsBackOnlyItself(t *testing.T) {
	ctx := t.Context()
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), outbox.Options{})
	defer ob.Close()
	if err := ob.Update(ctx, func(tx *outbox.Tx) error {
		_, err := tx.Exec(`CREATE TABLE side (x INTEGER)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			err := ob.Update(ctx, func(tx *outbox.Tx) error {
				if _, err := tx.Exec(`INSERT INTO side VALUES (?)`, i); err != nil {
					return err
				}
				if _, err := tx.Append("u", wire.Business, []byte(`{}`)); err != nil {
					return err
				}
				if i%2 == 1 {
					return boom
				}
				return nil
			})
			if (i%2 == 1) != errors.Is(err, boom) {
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	recs := outboxtest.All(t, ob)
	if len(recs) != 10 || ob.NextSeq() != 11 {
		t.Fatalf("%d records, next %d; want 10 and 11 (rolled-back updates must not use seqs)", len(recs), ob.NextSeq())
	}
	outboxtest.Contiguous(t, recs, 1)
	var n int
	ob.Update(ctx, func(tx *outbox.Tx) error { return tx.QueryRow(`SELECT COUNT(*) FROM side`).Scan(&n) })
	if n != 10 {
		t.Fatalf("%d side rows, want 10", n)
	}
}

func TestCanceledBeforeWriteIsNotWritten(t *testing.T) {
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), outbox.Options{})
	defer ob.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := ob.Append(ctx, "k", wire.Business, []byte(`{}`)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a canceled context: %v", err)
	}
	if ob.NextSeq() != 1 {
		t.Fatal("canceled append used a seq")
	}
}

// TestCrash kills a child appending in a loop at random moments and checks that every seq the
// child saw returned is present (or acked), without gaps or duplicates.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the test binary 20 times")
	}
	path := filepath.Join(t.TempDir(), "outbox.db")
	var epoch string
	var acked uint64
	printed := map[uint64]string{} // seq -> body the child saw committed
	bodies := map[string]uint64{}  // body -> seq, across every cycle
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	const cycles = 20
	for c := range cycles {
		lines := runAndKill(t, "TestCrashChild", map[string]string{"OUTBOX_CRASH_DB": path, "OUTBOX_CRASH_CYCLE": strconv.Itoa(c)},
			time.Duration(20+rng.IntN(200))*time.Millisecond)
		for _, l := range lines {
			seqStr, body, ok := strings.Cut(l, " ")
			seq, err := strconv.ParseUint(seqStr, 10, 64)
			if !ok || err != nil {
				t.Fatalf("child printed %q", l)
			}
			printed[seq] = body
		}
		ob := open(t, path, outbox.Options{})
		if epoch == "" {
			epoch = ob.Epoch()
		} else if ob.Epoch() != epoch {
			t.Fatalf("cycle %d: epoch changed from %q to %q", c, epoch, ob.Epoch())
		}
		recs := outboxtest.All(t, ob)
		outboxtest.Contiguous(t, recs, acked+1)
		if want := acked + uint64(len(recs)) + 1; ob.NextSeq() != want {
			t.Fatalf("cycle %d: next seq %d, want %d", c, ob.NextSeq(), want)
		}
		present := map[uint64]string{}
		for _, r := range recs {
			present[r.Seq] = string(r.Body)
			if s, ok := bodies[string(r.Body)]; ok && s != r.Seq {
				t.Fatalf("cycle %d: body %s stored twice, as seq %d and %d", c, r.Body, s, r.Seq)
			}
			bodies[string(r.Body)] = r.Seq
		}
		for seq, body := range printed {
			if seq <= acked {
				continue
			}
			if got, ok := present[seq]; !ok || got != body {
				t.Fatalf("cycle %d: promised seq %d (%s) is %q after kill -9", c, seq, body, got)
			}
		}
		checkIntegrity(t, path)
		if len(recs) > 0 { // the "hub" acks a random prefix
			acked = recs[rng.IntN(len(recs))].Seq
			if err := ob.Ack(t.Context(), epoch, acked); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("cycle %d: %d promised by the child, %d pending, acked up to %d", c, len(lines), len(recs), acked)
		ob.Close()
	}
	if len(printed) < cycles {
		t.Fatalf("the child promised only %d records in %d cycles", len(printed), cycles)
	}
}

// TestCrashChild is the child of TestCrash; it does nothing unless OUTBOX_CRASH_DB is set.
func TestCrashChild(t *testing.T) {
	path := os.Getenv("OUTBOX_CRASH_DB")
	if path == "" {
		t.Skip("child of TestCrash")
	}
	cycle := os.Getenv("OUTBOX_CRASH_CYCLE")
	ob := open(t, path, outbox.Options{})
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				b1 := fmt.Sprintf(`{"c":%s,"w":%d,"i":%d}`, cycle, w, i)
				b2 := fmt.Sprintf(`{"c":%s,"w":%d,"i":%d,"second":true}`, cycle, w, i)
				var out string
				if i%5 == 4 {
					first, err := ob.AppendBatch(context.Background(), []outbox.Entry{
						{Kind: "k", Class: wire.Business, Body: []byte(b1)}, {Kind: "k", Class: wire.Business, Body: []byte(b2)}})
					if err != nil {
						panic(err)
					}
					out = fmt.Sprintf("%d %s\n%d %s\n", first, b1, first+1, b2)
				} else {
					seq, err := ob.Append(context.Background(), "k", wire.Telemetry, []byte(b1))
					if err != nil {
						panic(err)
					}
					out = fmt.Sprintf("%d %s\n", seq, b1)
				}
				mu.Lock()
				os.Stdout.WriteString(out)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// runAndKill starts the test binary running only test with env, SIGKILLs it after it has printed
// its first line and then after d, and returns the complete lines it printed.
func runAndKill(t *testing.T, test string, env map[string]string, d time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make(chan struct{})
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if len(lines) == 0 {
				close(first)
			}
			lines = append(lines, sc.Text())
		}
	}()
	select {
	case <-first:
	case <-done:
	case <-time.After(30 * time.Second):
	}
	time.Sleep(d) // a random moment to kill at, not a wait for a condition
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed by SIGKILL: %v", cmd.ProcessState)
	}
	// A line without its newline was cut by the kill; bufio.Scanner keeps it, so drop a last line
	// that does not parse as complete JSON.
	if n := len(lines); n > 0 && !strings.HasSuffix(lines[n-1], "}") {
		lines = lines[:n-1]
	}
	return lines
}

func checkIntegrity(t *testing.T, path string) {
	t.Helper()
	db, err := sqlitex.Open(t.Context(), path, sqlitex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := sqlitex.IntegrityCheck(t.Context(), db.R); err != nil {
		t.Fatal(err)
	}
}

func benchAppend(b *testing.B, workers int, opts outbox.Options) {
	ob := open(b, filepath.Join(b.TempDir(), "o.db"), opts)
	defer ob.Close()
	body := outboxtest.Body(1, 200)
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range workers {
		n := b.N / workers
		if w < b.N%workers {
			n++
		}
		wg.Go(func() {
			for range n {
				if _, err := ob.Append(context.Background(), "bench", wire.Business, body); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkAppend measures durable appends (synchronous=FULL) from concurrent goroutines.
func BenchmarkAppend(b *testing.B) {
	for _, w := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", w), func(b *testing.B) { benchAppend(b, w, outbox.Options{}) })
	}
}

// BenchmarkAppendBatch measures durable appends of 100-record batches.
func BenchmarkAppendBatch(b *testing.B) {
	ob := open(b, filepath.Join(b.TempDir(), "o.db"), outbox.Options{})
	defer ob.Close()
	const size = 100
	batch := make([]outbox.Entry, size)
	for i := range batch {
		batch[i] = outbox.Entry{Kind: "bench", Class: wire.Telemetry, Body: outboxtest.Body(i, 200)}
	}
	b.ResetTimer()
	for range b.N {
		if _, err := ob.AppendBatch(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkPendingAck measures the uploader's cycle: read 100 pending records, ack them.
func BenchmarkPendingAck(b *testing.B) {
	ob := open(b, filepath.Join(b.TempDir(), "o.db"), outbox.Options{})
	defer ob.Close()
	const size = 100
	batch := make([]outbox.Entry, size)
	for i := range batch {
		batch[i] = outbox.Entry{Kind: "bench", Class: wire.Telemetry, Body: outboxtest.Body(i, 200)}
	}
	for range b.N {
		if _, err := ob.AppendBatch(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var after uint64
	for range b.N {
		recs, err := ob.Pending(context.Background(), after, size)
		if err != nil || len(recs) != size {
			b.Fatalf("pending: %d, %v", len(recs), err)
		}
		after = recs[len(recs)-1].Seq
		if err := ob.Ack(context.Background(), ob.Epoch(), after); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "records/s")
}

// FuzzAppend feeds arbitrary records to both implementations: they must accept exactly the valid
// ones, return them byte for byte, and never panic.
func FuzzAppend(f *testing.F) {
	f.Add("heartbeat", "t", []byte(`{"uptimeS":1}`))
	f.Add("cmd.result", "b", []byte(`{"id":"c","state":"accepted"}`))
	f.Add("Bad", "b", []byte(`{}`))
	f.Add("k", "x", []byte(`{}`))
	f.Add("k", "b", []byte(`{"a":`))
	f.Add("k", "b", []byte("\"\xff\""))
	f.Add("k", "b", []byte(`{"a":1,"A":2}`)) // the hub refuses duplicate keys: so must the outbox
	f.Add("k", "t", []byte(` 1 `))
	f.Fuzz(func(t *testing.T, kind, class string, body []byte) {
		ob := outbox.NewMemory(outbox.Options{MaxBytes: 1 << 20})
		seq, err := ob.Append(context.Background(), kind, wire.Class(class), body)
		valid := wire.ValidKind(kind) && (class == "t" || class == "b") && len(body) > 0 &&
			len(body) <= wire.MaxRecordBytes && strictjson.Check(body) == nil
		if valid != (err == nil) {
			t.Fatalf("Append(%q, %q, %q) = %v, valid %v", kind, class, body, err, valid)
		}
		if err != nil {
			if !errors.Is(err, outbox.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		recs, _ := ob.Pending(context.Background(), 0, 10)
		if seq != 1 || len(recs) != 1 || string(recs[0].Body) != string(body) || recs[0].Kind != kind {
			t.Fatalf("round trip: %d %+v", seq, recs)
		}
		// What the outbox accepts, the hub's decoder accepts.
		batch := wire.Encode(wire.Batch{V: wire.Version, Epoch: ob.Epoch(), Records: recs})
		if len(batch) <= wire.MaxPayloadBytes {
			if _, err := wire.DecodeBatch(batch); err != nil {
				t.Fatalf("accepted record refused by wire.DecodeBatch: %v", err)
			}
		}
	})
}

func TestDurabilityPragmas(t *testing.T) {
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), outbox.Options{})
	defer ob.Close()
	var sync int
	var mode string
	if err := ob.Update(t.Context(), func(tx *outbox.Tx) error {
		if err := tx.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil {
			return err
		}
		return tx.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	}); err != nil {
		t.Fatal(err)
	}
	if sync != 2 || mode != "wal" {
		t.Fatalf("synchronous=%d journal_mode=%s, want 2 (FULL) and wal", sync, mode)
	}
}

// FuzzDifferential runs the same operations on Memory and SQLite with a small cap: they must agree
// on every result, every pending record and every figure.
func FuzzDifferential(f *testing.F) {
	f.Add([]byte{0, 10, 1, 20, 2, 1, 3, 5, 0, 200, 0, 200, 1, 255, 2, 9})
	f.Add([]byte{1, 255, 1, 255, 1, 255, 1, 255, 1, 255, 1, 255, 2, 200, 1, 3})
	f.Add([]byte{0, 250, 0, 250, 0, 250, 0, 250, 0, 250, 0, 250, 3, 9, 0, 250, 2, 250, 4, 100})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 200 {
			return
		}
		clk := outboxtest.NewClock(time.Unix(1700000000, 0))
		opts := outbox.Options{MaxBytes: 4096, AlertReserve: 512, Now: clk.Now}
		mem := outbox.NewMemory(opts)
		dir, err := os.MkdirTemp("", "outbox-fuzz") // t.TempDir of a seed has a '#', which sqlitex refuses
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		sq := open(t, filepath.Join(dir, "o.db"), opts)
		defer sq.Close()
		ctx := context.Background()
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%5, int(ops[i+1])
			var got [2]string
			for j, ob := range []outbox.Outbox{mem, sq} {
				var seq uint64
				var err error
				switch op {
				case 0:
					seq, err = ob.Append(ctx, "tele", wire.Telemetry, outboxtest.Body(i, arg*2))
				case 1:
					seq, err = ob.Append(ctx, "biz", wire.Business, outboxtest.Body(i, arg*2))
				case 2:
					err = ob.Ack(ctx, ob.Epoch(), uint64(arg)%(ob.NextSeq()+2))
				case 3:
					seq, err = ob.AppendBatch(ctx, []outbox.Entry{
						{Kind: "tele", Class: wire.Telemetry, Body: outboxtest.Body(i, arg)},
						{Kind: wire.KindCmdResult, Class: wire.Business, Body: outboxtest.Body(i, arg)}})
				case 4:
					seq, err = ob.Append(ctx, wire.KindAlert, wire.Business, outboxtest.Body(i, arg))
				}
				st := ob.Stats()
				st.OldestAge = 0
				got[j] = fmt.Sprintf("%d %v %v %d %+v", seq, errors.Is(err, outbox.ErrFull), errors.Is(err, outbox.ErrAckAhead), ob.NextSeq(), st)
				if err != nil && !errors.Is(err, outbox.ErrFull) && !errors.Is(err, outbox.ErrAckAhead) {
					t.Fatalf("op %d: %v", op, err)
				}
			}
			if got[0] != got[1] {
				t.Fatalf("op %d(%d): memory %s, sqlite %s", op, arg, got[0], got[1])
			}
			clk.Advance(time.Second)
		}
		if a, b := fmt.Sprint(outboxtest.All(t, mem)), fmt.Sprint(outboxtest.All(t, sq)); a != b {
			t.Fatalf("pending differs:\nmemory %s\nsqlite %s", a, b)
		}
		if s := sq.Stats(); s.Bytes > s.MaxBytes {
			t.Fatalf("over the cap: %+v", s)
		}
	})
}

// TestDiskFull makes SQLite run out of pages: Append must fail with ErrFull, change nothing, and
// work again once there is room.
func TestDiskFull(t *testing.T) {
	ctx := t.Context()
	ob := open(t, filepath.Join(t.TempDir(), "o.db"), outbox.Options{})
	defer ob.Close()
	var pages int
	if err := ob.Update(ctx, func(tx *outbox.Tx) error { return tx.QueryRow(`PRAGMA page_count`).Scan(&pages) }); err != nil {
		t.Fatal(err)
	}
	if err := ob.Update(ctx, func(tx *outbox.Tx) error {
		_, err := tx.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+2))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var err error
	var n int
	for n = 0; n < 1000; n++ {
		if _, err = ob.Append(ctx, "biz", wire.Business, outboxtest.Body(n, 1000)); err != nil {
			break
		}
	}
	if !errors.Is(err, outbox.ErrFull) {
		t.Fatalf("append on a full disk: %v, want ErrFull", err)
	}
	if ob.NextSeq() != uint64(n)+1 || len(outboxtest.All(t, ob)) != n {
		t.Fatalf("failed append changed the outbox: next %d, %d appended", ob.NextSeq(), n)
	}
	if err := ob.Update(ctx, func(tx *outbox.Tx) error { _, err := tx.Exec(`PRAGMA max_page_count = 1000000`); return err }); err != nil {
		t.Fatal(err)
	}
	if seq, err := ob.Append(ctx, "biz", wire.Business, []byte(`{}`)); err != nil || seq != uint64(n)+1 {
		t.Fatalf("append after space returned: %d, %v", seq, err)
	}
}
