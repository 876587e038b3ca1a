// Package groupcommit gathers concurrent writes so that one commit (one fsync) carries them all:
// a hub logging in a thousand people a second cannot pay a commit for each of their writes. The
// first caller leads: it commits what has gathered, a few batches at most, then hands the lead to
// a waiting caller, so no caller waits long. Every caller returns only once the batch holding its
// write has been committed (or has failed): nothing is answered before it is durable. No
// goroutine of its own. The stores say how a batch is committed (hub/store/sqlite: one
// transaction, a savepoint per write; hub/store/postgres: one pipelined implicit transaction).
package groupcommit

import (
	"context"
	"sync"
)

// Group commits the writes given to Do in batches, with the function given to New.
type Group[W any] struct {
	commit func(ctx context.Context, batch []W)

	mu      sync.Mutex
	pending []*waiter[W]
	leading bool
}

// waiter is one write waiting for its batch.
type waiter[W any] struct {
	w    W
	done chan struct{} // closed when committed (or failed)
	lead chan struct{} // closed when this caller is to lead the next batches
}

// leadRounds is how many batches a caller commits before it hands the lead over.
const leadRounds = 2

// New returns a Group committing batches with commit, which stores each write's outcome in the
// write (W is a pointer to it). commit gets a context that is never cancelled: a caller giving up
// must not interrupt (and so roll back) the others' writes.
func New[W any](commit func(ctx context.Context, batch []W)) *Group[W] {
	return &Group[W]{commit: commit}
}

// Do adds w to the next batch and returns once that batch has been committed.
func (g *Group[W]) Do(ctx context.Context, w W) {
	r := &waiter[W]{w: w, done: make(chan struct{}), lead: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, r)
	if g.leading {
		g.mu.Unlock()
		select {
		case <-r.done:
			return
		case <-r.lead:
		}
		g.mu.Lock()
	}
	g.leading = true
	for round := 0; len(g.pending) > 0; round++ {
		if round == leadRounds {
			close(g.pending[0].lead) // hand over; g.leading stays true
			g.mu.Unlock()
			<-r.done
			return
		}
		batch := g.pending
		g.pending = nil
		g.mu.Unlock()
		ws := make([]W, len(batch))
		for i, b := range batch {
			ws[i] = b.w
		}
		g.commit(context.WithoutCancel(ctx), ws)
		for _, b := range batch {
			close(b.done)
		}
		g.mu.Lock()
	}
	g.leading = false
	g.mu.Unlock()
	<-r.done
}
