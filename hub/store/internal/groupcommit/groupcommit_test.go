package groupcommit

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

type write struct {
	id        int
	committed bool
}

// TestGathers: writes given while a batch commits make the next batch, together; each caller
// returns only once its write is committed, and every write is committed once.
func TestGathers(t *testing.T) {
	const n = 10
	var g *Group[*write]
	var batches [][]int
	first := true
	g = New(func(ctx context.Context, batch []*write) {
		if ctx.Done() != nil {
			t.Error("commit's context can be cancelled")
		}
		if first {
			first = false
			// Hold the first batch until every other write waits.
			deadline := time.Now().Add(10 * time.Second)
			for {
				g.mu.Lock()
				waiting := len(g.pending)
				g.mu.Unlock()
				if waiting == n-1 {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%d writes waiting, want %d", waiting, n-1)
					break
				}
				runtime.Gosched()
			}
		}
		var ids []int
		for _, w := range batch {
			if w.committed {
				t.Errorf("write %d committed twice", w.id)
			}
			w.committed = true
			ids = append(ids, w.id)
		}
		batches = append(batches, ids)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		w := &write{id: i}
		wg.Go(func() {
			g.Do(ctx, w)
			if !w.committed {
				t.Errorf("Do(%d) returned before its write was committed", i)
			}
		})
	}
	wg.Wait()
	if len(batches) != 2 || len(batches[0]) != 1 || len(batches[1]) != n-1 {
		t.Fatalf("batches %v, want one write then the %d others", batches, n-1)
	}
}
