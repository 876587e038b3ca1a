package inbox_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/agent/inbox"
	"github.com/kioskfleet/kioskfleet/agent/outbox"
	"github.com/kioskfleet/kioskfleet/agent/outbox/outboxtest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openBoth(t testing.TB, path string, opts outbox.Options) (*outbox.SQLite, *inbox.Inbox) {
	t.Helper()
	ob, err := outbox.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	in, err := inbox.Open(context.Background(), ob)
	if err != nil {
		ob.Close()
		t.Fatal(err)
	}
	return ob, in
}

func cmd(id string, expiresIn time.Duration) wire.Command {
	return wire.Command{V: wire.Version, ID: id, Name: "reboot", CreatedAt: 1, ExpiresAt: 2, ExpiresIn: expiresIn.Milliseconds()}
}

// results decodes the cmd.result records pending in ob.
func results(t testing.TB, ob outbox.Outbox) []wire.CommandResult {
	t.Helper()
	var out []wire.CommandResult
	for _, r := range outboxtest.All(t, ob) {
		if r.Kind != wire.KindCmdResult {
			continue
		}
		if r.Class != wire.Business {
			t.Fatalf("cmd.result of class %q", r.Class)
		}
		res, err := wire.DecodeCommandResult(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res)
	}
	return out
}

func TestLifeCycle(t *testing.T) {
	ctx := t.Context()
	ob, in := openBoth(t, filepath.Join(t.TempDir(), "agent.db"), outbox.Options{})
	defer ob.Close()
	now := time.Now()
	if d, err := in.Receive(ctx, cmd("c1", time.Minute), now); err != nil || d != inbox.Run {
		t.Fatalf("Receive = %v, %v; want run", d, err)
	}
	if d, err := in.Receive(ctx, cmd("c1", time.Minute), now); err != nil || d != inbox.Duplicate {
		t.Fatalf("second Receive = %v, %v; want duplicate", d, err)
	}
	if err := in.Finish(ctx, "c1", true, json.RawMessage(`{"rebooted":true}`), ""); err != nil {
		t.Fatal(err)
	}
	if err := in.Finish(ctx, "c1", false, nil, "again"); !errors.Is(err, inbox.ErrNotRunning) {
		t.Fatalf("second Finish: %v, want ErrNotRunning", err)
	}
	if err := in.Finish(ctx, "nope", true, nil, ""); !errors.Is(err, inbox.ErrUnknown) {
		t.Fatalf("Finish of an unknown ID: %v, want ErrUnknown", err)
	}
	if d, err := in.Receive(ctx, cmd("c2", time.Minute), now); err != nil || d != inbox.Run {
		t.Fatalf("Receive c2 = %v, %v", d, err)
	}
	if err := in.Finish(ctx, "c2", true, json.RawMessage(`{bad`), ""); !errors.Is(err, inbox.ErrInvalid) {
		t.Fatalf("Finish with bad output: %v, want ErrInvalid", err)
	}
	if err := in.Finish(ctx, "c2", false, nil, "paper jam"); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Receive(ctx, wire.Command{ID: "", Name: "x"}, now); !errors.Is(err, inbox.ErrInvalid) {
		t.Fatalf("Receive without ID: %v", err)
	}
	got := fmt.Sprint(results(t, ob))
	want := fmt.Sprint([]wire.CommandResult{
		{ID: "c1", State: wire.CmdAccepted},
		{ID: "c1", State: wire.CmdSucceeded, Output: json.RawMessage(`{"rebooted":true}`)},
		{ID: "c2", State: wire.CmdAccepted},
		{ID: "c2", State: wire.CmdFailed, Error: "paper jam"},
	})
	if got != want {
		t.Fatalf("results\n got %s\nwant %s", got, want)
	}
}

func TestExpiryUsesAgentClock(t *testing.T) {
	ctx := t.Context()
	ob, in := openBoth(t, filepath.Join(t.TempDir(), "agent.db"), outbox.Options{})
	defer ob.Close()
	// The hub's ExpiresAt is long past on the agent's (drifted) clock, but time is left: run.
	c := cmd("c1", time.Minute)
	c.ExpiresAt = time.Now().Add(-time.Hour).UnixMilli()
	if d, err := in.Receive(ctx, c, time.Now()); err != nil || d != inbox.Run {
		t.Fatalf("Receive = %v, %v; want run", d, err)
	}
	if d, err := in.Receive(ctx, cmd("c2", 0), time.Now()); err != nil || d != inbox.Expired {
		t.Fatalf("Receive with no time left = %v, %v; want expired", d, err)
	}
	if err := in.Finish(ctx, "c2", true, nil, ""); !errors.Is(err, inbox.ErrNotRunning) {
		t.Fatalf("Finish of an expired command: %v", err)
	}
	if d, _ := in.Receive(ctx, cmd("c2", time.Minute), time.Now()); d != inbox.Duplicate {
		t.Fatalf("redelivered expired command: %v, want duplicate", d)
	}
	res := results(t, ob)
	if len(res) != 2 || res[1].ID != "c2" || res[1].State != wire.CmdExpired {
		t.Fatalf("results %+v", res)
	}
}

func TestRecoverReportsInterrupted(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "agent.db")
	ob, in := openBoth(t, path, outbox.Options{})
	for _, id := range []string{"a", "b", "c"} {
		if _, err := in.Receive(ctx, cmd(id, time.Minute), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := in.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Start(ctx, "a"); !errors.Is(err, inbox.ErrNotAccepted) {
		t.Fatalf("second Start: %v, want ErrNotAccepted", err)
	}
	if err := in.Finish(ctx, "b", true, nil, ""); err != nil {
		t.Fatal(err)
	}
	ob.Close()

	ob, in = openBoth(t, path, outbox.Options{})
	defer ob.Close()
	if n, err := in.Recover(ctx); err != nil || n != 2 {
		t.Fatalf("Recover = %d, %v; want 2", n, err)
	}
	if n, err := in.Recover(ctx); err != nil || n != 0 {
		t.Fatalf("second Recover = %d, %v; want 0", n, err)
	}
	if d, _ := in.Receive(ctx, cmd("a", time.Minute), time.Now()); d != inbox.Duplicate {
		t.Fatalf("redelivered interrupted command: %v, want duplicate", d)
	}
	var failed []string
	for _, r := range results(t, ob) {
		if r.State == wire.CmdFailed {
			if r.Error != inbox.Interrupted {
				t.Fatalf("failed with %q", r.Error)
			}
			failed = append(failed, r.ID)
		}
	}
	if fmt.Sprint(failed) != "[a c]" {
		t.Fatalf("interrupted %v, want [a c]", failed)
	}
	if n, err := in.Prune(ctx, time.Now().Add(time.Second)); err != nil || n != 3 {
		t.Fatalf("Prune = %d, %v; want 3", n, err)
	}
}

// Commands accepted but not yet started when the agent died run after the restart (with the time
// they have left); those whose time ran out meanwhile are reported failed and never run.
func TestPendingAfterRestart(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "agent.db")
	ob, in := openBoth(t, path, outbox.Options{})
	t0 := time.Now()
	long := cmd("long", time.Hour)
	long.Args = json.RawMessage(`{"printer":"a4"}`)
	for _, c := range []wire.Command{long, cmd("short", time.Second), cmd("started", time.Hour)} {
		if d, err := in.Receive(ctx, c, t0); err != nil || d != inbox.Run {
			t.Fatalf("Receive %s = %v, %v", c.ID, d, err)
		}
	}
	if err := in.Start(ctx, "started"); err != nil {
		t.Fatal(err)
	}
	ob.Close()

	ob, in = openBoth(t, path, outbox.Options{})
	defer ob.Close()
	if n, err := in.Recover(ctx); err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want 1 (the started one)", n, err)
	}
	later := t0.Add(time.Minute)
	pend, err := in.Pending(ctx, later)
	if err != nil {
		t.Fatal(err)
	}
	if len(pend) != 1 || pend[0].ID != "long" || string(pend[0].Args) != `{"printer":"a4"}` || pend[0].ExpiresIn != (59*time.Minute).Milliseconds() {
		t.Fatalf("Pending = %+v, want long with its args and 59 min left", pend)
	}
	if err := in.Start(ctx, "long"); err != nil {
		t.Fatal(err)
	}
	if err := in.Finish(ctx, "long", true, nil, ""); err != nil {
		t.Fatal(err)
	}
	if pend, _ := in.Pending(ctx, later); len(pend) != 0 {
		t.Fatalf("Pending after running it: %+v", pend)
	}
	final := map[string]wire.CommandResult{}
	for _, r := range results(t, ob) {
		if r.State != wire.CmdAccepted {
			final[r.ID] = r
		}
	}
	if r := final["short"]; r.State != wire.CmdFailed || r.Error != inbox.ExpiredBeforeStart {
		t.Fatalf("short: %+v, want failed %q", r, inbox.ExpiredBeforeStart)
	}
	if r := final["started"]; r.State != wire.CmdFailed || r.Error != inbox.Interrupted {
		t.Fatalf("started: %+v, want interrupted", r)
	}
	if r := final["long"]; r.State != wire.CmdSucceeded {
		t.Fatalf("long: %+v", r)
	}
}

// TestReceiveIsAtomicWithResult fills the outbox so that the accepted result cannot be appended:
// the command must then not be recorded either, so that its redelivery runs it.
func TestReceiveIsAtomicWithResult(t *testing.T) {
	ctx := t.Context()
	ob, in := openBoth(t, filepath.Join(t.TempDir(), "agent.db"), outbox.Options{MaxBytes: 4096, AlertReserve: 512})
	defer ob.Close()
	for {
		if _, err := ob.Append(ctx, "biz", wire.Business, outboxtest.Body(0, 100)); errors.Is(err, outbox.ErrFull) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	var i int
	var err error
	for i = 0; i < 100; i++ {
		if _, err = in.Receive(ctx, cmd(fmt.Sprint("c", i), time.Minute), time.Now()); err != nil {
			break
		}
	}
	if !errors.Is(err, outbox.ErrFull) {
		t.Fatalf("Receive in a full outbox: %v, want ErrFull", err)
	}
	if err := ob.Ack(ctx, ob.Epoch(), ob.NextSeq()-1); err != nil {
		t.Fatal(err)
	}
	if d, err := in.Receive(ctx, cmd(fmt.Sprint("c", i), time.Minute), time.Now()); err != nil || d != inbox.Run {
		t.Fatalf("redelivery after a refused Receive = %v, %v; want run", d, err)
	}
}

// TestCrash kills a child receiving and running commands at random moments: no command may run
// twice, and every command ends with exactly one accepted and one final result (or one expired).
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the test binary 20 times")
	}
	dir := t.TempDir()
	db, side := filepath.Join(dir, "agent.db"), filepath.Join(dir, "executed")
	rng := rand.New(rand.NewPCG(2, uint64(time.Now().UnixNano())))
	var start, interrupted int
	for c := range 20 {
		runAndKill(t, map[string]string{"INBOX_CRASH_DB": db, "INBOX_CRASH_SIDE": side, "INBOX_CRASH_START": strconv.Itoa(start)},
			time.Duration(20+rng.IntN(200))*time.Millisecond)

		executed := map[string]bool{}
		data, _ := os.ReadFile(side)
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			id, ok := strings.CutPrefix(l, "executing ")
			if !ok {
				continue
			}
			if executed[id] {
				t.Fatalf("cycle %d: command %s ran twice", c, id)
			}
			executed[id] = true
			n, _ := strconv.Atoi(strings.TrimPrefix(id, "c"))
			start = max(start, n-10) // the next child redelivers the last few
		}
		ob, in := openBoth(t, db, outbox.Options{})
		n, err := in.Recover(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		interrupted += n
		pending := map[string]bool{}
		pend, err := in.Pending(t.Context(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range pend {
			pending[c.ID] = true
		}
		type life struct{ accepted, final, expired int }
		lives := map[string]*life{}
		for _, r := range results(t, ob) {
			l := lives[r.ID]
			if l == nil {
				l = &life{}
				lives[r.ID] = l
			}
			switch r.State {
			case wire.CmdAccepted:
				l.accepted++
			case wire.CmdExpired:
				l.expired++
			default:
				l.final++
			}
		}
		for id, l := range lives {
			if *l != (life{1, 1, 0}) && *l != (life{0, 0, 1}) && !(pending[id] && *l == (life{1, 0, 0})) {
				t.Fatalf("cycle %d: command %s has results %+v", c, id, *l)
			}
			n, _ := strconv.Atoi(strings.TrimPrefix(id, "c"))
			if (n%7 == 0) != (l.expired == 1) {
				t.Fatalf("cycle %d: command %s expired %d times", c, id, l.expired)
			}
		}
		for id := range executed {
			if l := lives[id]; l == nil || l.accepted != 1 {
				t.Fatalf("cycle %d: %s ran without being accepted", c, id)
			}
			if pending[id] {
				t.Fatalf("cycle %d: %s ran and is still pending: it would run twice", c, id)
			}
		}
		t.Logf("cycle %d: %d commands known, %d ran, %d interrupted so far", c, len(lives), len(executed), interrupted)
		ob.Close()
	}
}

// TestCrashChild is the child of TestCrash; it does nothing unless INBOX_CRASH_DB is set.
func TestCrashChild(t *testing.T) {
	path := os.Getenv("INBOX_CRASH_DB")
	if path == "" {
		t.Skip("child of TestCrash")
	}
	start, _ := strconv.Atoi(os.Getenv("INBOX_CRASH_START"))
	side, err := os.OpenFile(os.Getenv("INBOX_CRASH_SIDE"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	ob, in := openBoth(t, path, outbox.Options{})
	if _, err := in.Recover(context.Background()); err != nil {
		panic(err)
	}
	run := func(id string, ok bool) {
		if err := in.Start(context.Background(), id); err != nil {
			panic(err)
		}
		if _, err := side.WriteString("executing " + id + "\n"); err != nil {
			panic(err)
		}
		if err := in.Finish(context.Background(), id, ok, nil, "odd failure"); err != nil {
			panic(err)
		}
	}
	// Commands a previous child accepted but never started run now.
	pend, err := in.Pending(context.Background(), time.Now())
	if err != nil {
		panic(err)
	}
	for _, c := range pend {
		run(c.ID, true)
	}
	os.Stdout.WriteString("ready\n")
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			for i := start + w; ; i += workers {
				id := fmt.Sprint("c", i)
				left := time.Minute
				if i%7 == 0 {
					left = 0
				}
				d, err := in.Receive(context.Background(), cmd(id, left), time.Now())
				if err != nil {
					panic(err)
				}
				if d != inbox.Run {
					continue
				}
				run(id, i%3 != 0)
			}
		})
	}
	wg.Wait()
	ob.Close()
}

func runAndKill(t *testing.T, env map[string]string, d time.Duration) {
	t.Helper()
	c := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	c.Env = os.Environ()
	for k, v := range env {
		c.Env = append(c.Env, k+"="+v)
	}
	c.Stderr = os.Stderr
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		ready <- bufio.NewScanner(out).Scan()
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
	}
	time.Sleep(d) // a random moment to kill at, not a wait for a condition
	c.Process.Signal(syscall.SIGKILL)
	c.Wait()
	if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed by SIGKILL: %v", c.ProcessState)
	}
}

// TestConcurrentDuplicates delivers the same command from many goroutines at once: it runs once.
func TestConcurrentDuplicates(t *testing.T) {
	ob, in := openBoth(t, filepath.Join(t.TempDir(), "agent.db"), outbox.Options{})
	defer ob.Close()
	var mu sync.Mutex
	count := map[inbox.Decision]int{}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			d, err := in.Receive(context.Background(), cmd("same", time.Minute), time.Now())
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			count[d]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if count[inbox.Run] != 1 || count[inbox.Duplicate] != 15 {
		t.Fatalf("decisions %v, want one run and 15 duplicates", count)
	}
	if res := results(t, ob); len(res) != 1 {
		t.Fatalf("%d results, want 1 accepted", len(res))
	}
}

// BenchmarkReceiveFinish measures a command's two durable transactions from 8 goroutines.
func BenchmarkReceiveFinish(b *testing.B) {
	ob, in := openBoth(b, filepath.Join(b.TempDir(), "agent.db"), outbox.Options{})
	defer ob.Close()
	var next atomic.Int64
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprint("c", next.Add(1))
			if _, err := in.Receive(context.Background(), cmd(id, time.Minute), time.Now()); err != nil {
				b.Error(err)
				return
			}
			if err := in.Finish(context.Background(), id, true, nil, ""); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commands/s")
}
