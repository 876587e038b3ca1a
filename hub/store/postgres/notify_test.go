package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/postgres"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/pgtest"
)

// changes collects what a Listen tells.
type changes struct {
	mu      sync.Mutex
	got     []store.Change
	listens int
}

func (c *changes) onListen() { c.mu.Lock(); c.listens++; c.mu.Unlock() }

func (c *changes) onChange(ch store.Change) { c.mu.Lock(); c.got = append(c.got, ch); c.mu.Unlock() }

func (c *changes) listened() int { c.mu.Lock(); defer c.mu.Unlock(); return c.listens }

// wait waits until want was told (in this order, among others), and forgets what came before.
func (c *changes) wait(t *testing.T, want ...store.Change) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		i, j := 0, 0
		for ; i < len(c.got) && j < len(want); i++ {
			if c.got[i] == want[j] {
				j++
			}
		}
		if j == len(want) {
			c.got = c.got[i:]
			c.mu.Unlock()
			return
		}
		got := slices.Clone(c.got)
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("told %v; want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// listen runs s.Listen until t ends.
func listen(t *testing.T, s *postgres.Store) *changes {
	c := &changes{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Listen(ctx, c.onListen, c.onChange) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Listen returned %v, want context.Canceled", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for c.listened() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Listen did not start listening")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return c
}

// Every change another replica must act on is told to a replica listening on the database,
// whichever replica wrote it.
func TestListenTellsChanges(t *testing.T) {
	url := pgtest.DB(t)
	a, b := open(t, url), open(t, url) // two replicas
	c := listen(t, a)
	ctx := t.Context()
	storetest.Enroll(t, b, "sz", "k1")
	storetest.Enroll(t, b, "sz", "k2")
	if err := b.CreateCommand(ctx, store.Command{ID: "c1", DeviceID: "k1", Name: "ping", ExpiresAt: storetest.T0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetDesired(ctx, "k2", json.RawMessage(`{}`), storetest.T0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetDesired(ctx, "k2", json.RawMessage(`{"a":1}`), storetest.T0); err != nil {
		t.Fatal(err)
	}
	c.wait(t, store.Change{Kind: store.ChangeCommand, ID: "k1"}, store.Change{Kind: store.ChangeDesired, ID: "k2"},
		store.Change{Kind: store.ChangeDesired, ID: "k2"})
	if err := b.RevokeDevice(ctx, "k1", storetest.T0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RetireDevices(ctx, store.DeviceFilter{IDs: []string{"k1", "k2"}}, storetest.T0); err != nil {
		t.Fatal(err)
	}
	// k1 revoked once (retiring keeps its revocation), k2 revoked by retiring.
	c.wait(t, store.Change{Kind: store.ChangeRevoked, ID: "k1"}, store.Change{Kind: store.ChangeRevoked, ID: "k2"})
	if err := b.PutClient(ctx, store.Client{ID: "web"}); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteClient(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddSigningKey(ctx, store.SigningKey{ID: "k", Alg: "ES256", PrivateEnc: []byte{1}, CreatedAt: storetest.T0}); err != nil {
		t.Fatal(err)
	}
	c.wait(t, store.Change{Kind: store.ChangeClient, ID: "web"}, store.Change{Kind: store.ChangeClient, ID: "web"},
		store.Change{Kind: store.ChangeSigningKeys})
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.got {
		if ch.Kind == store.ChangeRevoked {
			t.Errorf("a device revoked again was told again: %v", ch)
		}
	}
}

// A listener whose server went away (kill -9 and restart) listens again by itself, says so (a
// replica then sweeps for what it missed), and hears later changes.
func TestListenAgainAfterServerRestart(t *testing.T) {
	if _, err := pgtest.Shared(); errors.Is(err, pgtest.ErrNoPostgres) {
		t.Skip(err)
	}
	srv, err := pgtest.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, url, err := srv.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, url)
	storetest.Enroll(t, s, "sz", "k1")
	c := listen(t, s)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.listened() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("not listening again after the server's restart")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; ; i++ { // the pool finds its connections broken and replaces them
		_, err = s.SetDesired(ctx, "k1", json.RawMessage(`{}`), storetest.T0)
		if err == nil || i == 5 {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	c.wait(t, store.Change{Kind: store.ChangeDesired, ID: "k1"})
}
