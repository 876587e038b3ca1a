package sqlite_test

import (
	"bufio"
	"context"
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

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
)

// crashEnv names the database a re-executed test binary commits to until it is killed.
const crashEnv = "KF_STORE_CRASH_DB"

var crashDevices = []string{"k0", "k1", "k2", "k3"}

// crashChild runs the child side of TestCrashDurability when crashEnv is set: it commits groups
// of batches in a loop (with duplicates and gaps that the same group fills) and prints
// "device upto" for every watermark, only after CommitBatches has returned. It reports whether
// it ran.
func crashChild() bool {
	path := os.Getenv(crashEnv)
	if path == "" {
		return false
	}
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for {
		var group []store.Batch
		for _, d := range crashDevices {
			up, err := s.Watermark(ctx, d, "e")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			n := 20 + rand.IntN(40)
			// The later half first (parked beyond a gap), then the earlier half, then a duplicate.
			group = append(group, storetest.NewBatch(d, "e", up+uint64(n/2)+1, n-n/2, 200),
				storetest.NewBatch(d, "e", up+1, n/2, 200))
			if up > 5 {
				group = append(group, storetest.NewBatch(d, "e", up-4, 5, 200))
			}
		}
		marks, err := s.CommitBatches(ctx, group)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		var b strings.Builder
		for _, m := range marks {
			fmt.Fprintf(&b, "%s %d\n", m.DeviceID, m.UpTo)
		}
		os.Stdout.WriteString(b.String())
	}
}

// TestCrashDurability: "committed means durable". A child process commits in a loop and prints
// each watermark after CommitBatches returns; it is killed with SIGKILL at random moments. After
// every kill the database opens, holds at least every printed watermark, has exactly the records
// 1..watermark once each, and passes integrity_check.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the test binary")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	printed := map[string]uint64{}
	const cycles = 12
	for cycle := range cycles {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+path)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		lines := 0
		done := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				dev, n, ok := strings.Cut(sc.Text(), " ")
				up, err := strconv.ParseUint(n, 10, 64)
				if !ok || err != nil {
					continue // a line cut by the kill is not a promise
				}
				mu.Lock()
				printed[dev] = max(printed[dev], up)
				lines++
				mu.Unlock()
			}
		}()
		// Let it commit at least once, then kill it at a random moment.
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			n := lines
			mu.Unlock()
			if n > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-done
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("cycle %d: child ended by itself (%v): %s", cycle, err, stderr.String())
		}
		verifyCrash(t, path, printed, cycle)
	}
	t.Logf("after %d kills: printed watermarks %v", cycles, printed)
}

func verifyCrash(t *testing.T, path string, printed map[string]uint64, cycle int) {
	t.Helper()
	ctx := t.Context()
	s := open(t, path)
	defer s.Close()
	if err := s.Check(ctx); err != nil {
		t.Fatalf("cycle %d: %v", cycle, err)
	}
	for _, d := range crashDevices {
		up, err := s.Watermark(ctx, d, "e")
		if err != nil {
			t.Fatal(err)
		}
		if up < printed[d] {
			t.Fatalf("cycle %d: %s stored watermark %d < acknowledged %d: a promise was lost", cycle, d, up, printed[d])
		}
		rs, err := s.ListRecords(ctx, store.RecordFilter{DeviceID: d, Limit: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(rs)) != up {
			t.Fatalf("cycle %d: %s has %d records, watermark %d", cycle, d, len(rs), up)
		}
		for i, r := range rs {
			if r.Seq != uint64(i+1) {
				t.Fatalf("cycle %d: %s record %d has seq %d (duplicate or hole)", cycle, d, i, r.Seq)
			}
		}
	}
}
