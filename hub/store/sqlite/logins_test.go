package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// Logins in progress are kept in memory (logins.go): after a restart none from before can be
// redeemed, while what logins left behind (sessions, tokens) is still there.
func TestLoginsInProgressFailClosedAcrossRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hub.db")
	s := open(t, path)
	now := time.Now()
	code := []byte("code-hash")
	if err := s.SaveAuthRequest(ctx, store.AuthRequest{ID: "a1", ClientID: "rp", CodeHash: code, ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCeremony(ctx, store.Ceremony{ID: "c1", Kind: "k", Doc: []byte("{}"), ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	sess := store.BrowserSession{Hash: []byte("session"), UserID: "u1", AuthTime: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateBrowserSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, path)
	defer s.Close()
	if _, err := s.ConsumeCode(ctx, code); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("code from before the restart: %v, want ErrNotFound", err)
	}
	if _, err := s.TakeCeremony(ctx, "c1", "k", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ceremony from before the restart: %v, want ErrNotFound", err)
	}
	if _, err := s.GetBrowserSession(ctx, sess.Hash); err != nil {
		t.Errorf("browser session lost across the restart: %v", err)
	}

	// Purge forgets expired ones.
	s.SaveAuthRequest(ctx, store.AuthRequest{ID: "a2", CodeHash: code, ExpiresAt: now.Add(time.Minute)})
	if err := s.Purge(ctx, now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAuthRequest(ctx, "a2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired request kept after purge: %v", err)
	}
}

// Writes group-committed together fail alone: a duplicate among concurrent writes is refused
// (ErrExists) and every other write of its transaction is kept.
func TestGroupCommitFailsWritesAlone(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "hub.db"))
	defer s.Close()
	now := time.Now()
	const n = 40
	errs := make(chan error, 2*n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 2 * n {
		wg.Go(func() {
			<-start
			h := []byte(fmt.Sprintf("session-%d", i%n)) // each hash twice
			errs <- s.CreateBrowserSession(ctx, store.BrowserSession{Hash: h, UserID: "u", AuthTime: now, ExpiresAt: now.Add(time.Hour)})
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	dup := 0
	for err := range errs {
		switch {
		case errors.Is(err, store.ErrExists):
			dup++
		case err != nil:
			t.Errorf("unexpected: %v", err)
		}
	}
	if dup != n {
		t.Errorf("%d duplicates refused, want %d", dup, n)
	}
	for i := range n {
		if _, err := s.GetBrowserSession(ctx, []byte(fmt.Sprintf("session-%d", i))); err != nil {
			t.Errorf("session %d lost with its batch: %v", i, err)
		}
	}
}
