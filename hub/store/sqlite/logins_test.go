package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
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
