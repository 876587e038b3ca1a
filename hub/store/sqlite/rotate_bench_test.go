package sqlite_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// BenchmarkRotateRefresh: refresh-token rotations (RotateRefresh: the old token marked, a new
// access and refresh token inserted, group-committed with synchronous=FULL) from 16 concurrent
// grants, on a table that already holds 20,000 tokens of other grants, the tokens' IDs and keys
// made as hub/identity makes them. It reports rotations/s and the process's CPU time per
// rotation, the figure to compare when tuning (wall-clock figures move with whatever else the
// machine runs; CPU per rotation much less).
func BenchmarkRotateRefresh(b *testing.B) {
	const grants, others = 16, 20_000
	s := open(b, filepath.Join(b.TempDir(), "bench.db"))
	b.Cleanup(func() { s.Close() })
	ctx := b.Context()
	now := time.Now()
	tok := func(kind store.TokenKind, family, user string) store.Token {
		// A refresh token's key as hub/identity makes it: its time, then its SHA-256; an
		// access token has none.
		var h []byte
		if kind == store.TokenRefresh {
			h = make([]byte, 8+32)
			binary.BigEndian.PutUint64(h, uint64(time.Now().UnixNano()))
			rand.Read(h[8:])
		}
		return store.Token{ID: randomID(), Kind: kind, Hash: h, FamilyID: family, UserID: user, Subject: user,
			ClientID: "fleet-console", Scopes: []string{"openid", "offline_access"}, AMR: []string{"pwd"}, AuthTime: now,
			Audience: []string{"https://hub.example/api"}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	}
	for i := 0; i < others; i += 500 {
		var ts []store.Token
		for range 250 {
			f, u := randomSecret(), randomSecret()
			ts = append(ts, tok(store.TokenAccess, f, u), tok(store.TokenRefresh, f, u))
		}
		if err := s.InsertTokens(ctx, ts...); err != nil {
			b.Fatal(err)
		}
	}
	current, families, users := make([]string, grants), make([]string, grants), make([]string, grants)
	for i := range current {
		families[i], users[i] = randomSecret(), randomSecret()
		rt := tok(store.TokenRefresh, families[i], users[i])
		if err := s.InsertTokens(ctx, rt); err != nil {
			b.Fatal(err)
		}
		current[i] = rt.ID
	}
	cpu0 := cpuTime()
	b.ResetTimer()
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	for i := range current {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				at, rt := tok(store.TokenAccess, families[i], users[i]), tok(store.TokenRefresh, families[i], users[i])
				if err := s.RotateRefresh(ctx, current[i], now, at, rt); err != nil {
					b.Error(err)
					return
				}
				current[i] = rt.ID
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rotations/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
}

func randomSecret() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// randomID is a token ID as hub/identity makes them: time first, then random.
func randomID() string {
	var b [12]byte
	rand.Read(b[:])
	return fmt.Sprintf("%016x", uint64(time.Now().UnixNano())) + base64.RawURLEncoding.EncodeToString(b[:])
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
