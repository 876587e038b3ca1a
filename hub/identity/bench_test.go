package identity_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/hub/store/postgres"
	"github.com/kioskfleet/kioskfleet/pkg/pgtest"
)

// grantTokens runs n code flows for client rp and returns their token responses.
func grantTokens(b *testing.B, e *identitytest.Env, n int) []map[string]any {
	b.Helper()
	var out []map[string]any
	for range n {
		verifier := oauth2.GenerateVerifier()
		u := authURL(e, "rp", e.Callback, url.Values{"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}})
		cb, err := e.NewBrowser().Login(u, identitytest.AdminUser, identitytest.AdminPassword)
		if err != nil {
			b.Fatal(err)
		}
		st, tok, err := e.PostForm("/oidc/token", url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")},
			"redirect_uri": {e.Callback}, "code_verifier": {verifier}}, "rp", "rp-secret")
		if err != nil || st != 200 {
			b.Fatal(st, err)
		}
		out = append(out, tok)
	}
	return out
}

// inProcess is a RoundTripper that serves requests with the handler directly: no sockets, so
// the figure is the provider's own cost without the load of a client sharing the machine.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// clients returns the two ways benchmarks reach the provider.
func clients(e *identitytest.Env) map[string]*http.Client {
	return map[string]*http.Client{
		"loopback":   {Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		"in-process": {Transport: inProcess{e.P.Handler()}},
	}
}

// processCPU is the CPU time this process used so far (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rate(b *testing.B, unit string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

// BenchmarkRefreshGrant: refresh-token grants over HTTP (loopback), each a rotation committed
// with synchronous=FULL, from 16 concurrent clients each with its own grant.
func BenchmarkRefreshGrant(b *testing.B) {
	e := identitytest.New(b)
	toks := grantTokens(b, e, 32)
	var next atomic.Int32
	for _, name := range []string{"loopback", "in-process"} {
		client := clients(e)[name]
		b.Run(name, func(b *testing.B) { benchRefresh(b, e, client, toks, &next) })
	}
}

func benchRefresh(b *testing.B, e *identitytest.Env, client *http.Client, toks []map[string]any, next *atomic.Int32) {
	b.SetParallelism(4)
	cpu0 := processCPU()
	defer func() {
		// The provider's CPU and the client's (this process), not a separate database's.
		b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
	}()
	b.RunParallel(func(pb *testing.PB) {
		i := (next.Add(1) - 1) % int32(len(toks))
		rt := toks[i]["refresh_token"].(string)
		defer func() { toks[i]["refresh_token"] = rt }()
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, e.Issuer+"/oidc/token",
				strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("rp", "rp-secret")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			var m map[string]any
			jsonDecode(resp.Body, &m)
			resp.Body.Close()
			if m["refresh_token"] == nil {
				b.Errorf("refresh: %v", m)
				return
			}
			rt = m["refresh_token"].(string)
		}
	})
	rate(b, "tokens/s")
}

func get(b *testing.B, client *http.Client, u, at string) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if at != "" {
		req.Header.Set("Authorization", "Bearer "+at)
	}
	resp, err := client.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	var m map[string]any
	jsonDecode(resp.Body, &m)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Errorf("%s: %d", u, resp.StatusCode)
	}
}

// BenchmarkUserinfo: userinfo requests over HTTP (loopback) with a live access token.
func BenchmarkUserinfo(b *testing.B) {
	e := identitytest.New(b)
	at := grantTokens(b, e, 1)[0]["access_token"].(string)
	for name, client := range clients(e) {
		b.Run(name, func(b *testing.B) {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get(b, client, e.Issuer+"/oidc/userinfo", at)
				}
			})
			rate(b, "requests/s")
		})
	}
}

// BenchmarkDiscoveryJWKS: discovery and JWKS requests (alternating) over HTTP (loopback).
func BenchmarkDiscoveryJWKS(b *testing.B) {
	e := identitytest.New(b)
	var n atomic.Int64
	for name, client := range clients(e) {
		b.Run(name, func(b *testing.B) {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if n.Add(1)%2 == 0 {
						get(b, client, e.Issuer+"/.well-known/openid-configuration", "")
					} else {
						get(b, client, e.Issuer+"/oidc/keys", "")
					}
				}
			})
			rate(b, "requests/s")
		})
	}
}

// BenchmarkPasswordLogin: password logins at 50 per second with the production argon2id
// parameters; reports the latency percentiles. One op is one login (20 ms of schedule).
func BenchmarkPasswordLogin(b *testing.B) {
	e := identitytest.New(b, func(c *identity.Config) { c.Argon2 = nil })
	ctx := context.Background()
	if _, err := e.P.CreateStaff(ctx, identity.NewStaff{Username: "ops", Password: "a long password"}); err != nil {
		b.Fatal(err)
	}
	openLoop(b, "password login", 20*time.Millisecond, func(int) error {
		_, err := e.P.PasswordLogin(ctx, "ops", "a long password")
		return err
	})
}

// openLoop runs op b.N times, one started every interval whether the earlier ones ended or
// not (an open loop, as logins arrive), and reports the latency percentiles.
func openLoop(b *testing.B, what string, every time.Duration, op func(i int) error) {
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	tick := time.NewTicker(every)
	defer tick.Stop()
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		wg.Go(func() {
			start := time.Now()
			if err := op(i); err != nil {
				b.Error(err)
			}
			d := time.Since(start)
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)]) / float64(time.Millisecond) }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	if testing.Verbose() {
		fmt.Printf("%s: %d, p50 %.1f ms, p99 %.1f ms\n", what, len(lat), pct(0.5), pct(0.99))
	}
}

// BenchmarkRefreshGrantPostgres is BenchmarkRefreshGrant with the provider's store on
// PostgreSQL (a server of the benchmark's own, fsync on, the store's default pool), as hub
// replicas keep it. It reports PostgreSQL's CPU per grant (pg-cpu-us/op) beside this process's.
func BenchmarkRefreshGrantPostgres(b *testing.B) {
	ctx := context.Background()
	srv, err := pgtest.Start(ctx, "fsync=on", "full_page_writes=on")
	if errors.Is(err, pgtest.ErrNoPostgres) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	_, url, err := srv.CreateDatabase(ctx)
	if err != nil {
		b.Fatal(err)
	}
	st, err := postgres.Open(ctx, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	e := identitytest.NewOn(b, st)
	toks := grantTokens(b, e, 32)
	var next atomic.Int32
	b.Run("loopback", func(b *testing.B) {
		cpu0, err := srv.CPU()
		if err != nil {
			b.Fatal(err)
		}
		benchRefresh(b, e, clients(e)["loopback"], toks, &next)
		cpu, err := srv.CPU()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64((cpu-cpu0).Microseconds())/float64(b.N), "pg-cpu-us/op")
	})
}
