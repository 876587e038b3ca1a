package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/pgtest"
)

// BenchmarkRefreshGrantHub: refresh-token grants against a real fleet-hub process over HTTPS
// (loopback, the hub's CA trusted), from refreshWorkers clients, each with its own connection,
// rotating its own grant; each rotation is committed with synchronous=FULL. One op is one grant.
// The hub trusts the bench as a reverse proxy and every request names its own client address
// (X-Forwarded-For), as when many clients reach the hub: the per-address token limit stays on
// but is not what is measured. It reports tokens/s and the hub's CPU use (percent of one core).
// KF_BENCH_CPUPROFILE=FILE saves a 10 s CPU profile of the hub during the run. KF_BENCH_POSTGRES=1
// runs the hub as a replica on a PostgreSQL server of the benchmark's own (fsync on), set up by
// fleet-hub init, and reports that server's CPU too (pg-cpu-%): make bench's cluster scenario
// compares it with the SQLite hub.
func BenchmarkRefreshGrantHub(b *testing.B) {
	const refreshWorkers = 16
	h := unstartedHub(b)
	pprofAddr := freeAddr(b)
	h.args = []string{"--pprof-addr", pprofAddr, "--log-level", "warn", "--trusted-proxies", "127.0.0.1"}
	var pg *pgtest.Server
	if os.Getenv("KF_BENCH_POSTGRES") == "1" {
		var err error
		if pg, err = pgtest.Start(b.Context(), "fsync=on", "full_page_writes=on"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { pg.Close() })
		_, st, err := pg.CreateDatabase(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		public := "https://" + h.httpAddr
		if out, err := exec.Command(filepath.Join(binDir, "fleet-hub"), "init", "--data", h.dir, "--store", st, "--public-url", public,
			"--log-level", "warn").CombinedOutput(); err != nil {
			b.Fatalf("fleet-hub init: %v\n%s", err, out)
		}
		h.args = append(h.args, "--store", st, "--public-url", public)
	}
	h.start()
	password := adminPassword(b, h)
	secret := credential(b, h, `client secret fleet-console`)
	base := h.client.BaseURL
	roots, err := api.LoadCA(h.caFile)
	if err != nil {
		b.Fatal(err)
	}

	token := func(c *http.Client, form url.Values) map[string]any {
		req, _ := http.NewRequest(http.MethodPost, base+"/oidc/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("fleet-console", secret)
		resp, err := c.Do(req)
		if err != nil {
			b.Error(err)
			return nil
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK || m["refresh_token"] == nil {
			b.Errorf("token: status %d: %v %v", resp.StatusCode, m, err)
			return nil
		}
		return m
	}
	// One grant per worker: a code flow (PKCE) with the admin's password.
	clients := make([]*http.Client, refreshWorkers)
	refresh := make([]string, refreshWorkers)
	redirect := base + "/console/callback"
	var clientAddr atomic.Uint32
	for i := range refresh {
		tr := api.Transport(roots)
		b.Cleanup(tr.CloseIdleConnections)
		fwd := forwardedFor{next: tr, n: &clientAddr}
		clients[i] = &http.Client{Transport: fwd, Timeout: 30 * time.Second}
		verifier := oauth2.GenerateVerifier()
		q := url.Values{"client_id": {"fleet-console"}, "redirect_uri": {redirect}, "response_type": {"code"},
			"scope": {"openid offline_access"}, "state": {"s"},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
		// Redirects inside /oidc/ are followed, the one to the console's callback returned.
		browser := identitytest.NewBrowserFor(base + "/oidc/")
		browser.C.Transport = fwd
		cb, err := browser.Login(base+"/oidc/authorize?"+q.Encode(), "admin", password)
		if err != nil {
			b.Fatal(err)
		}
		m := token(clients[i], url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")},
			"redirect_uri": {redirect}, "code_verifier": {verifier}})
		if m == nil {
			b.FailNow()
		}
		refresh[i] = m["refresh_token"].(string)
	}

	var profile chan error
	if path := os.Getenv("KF_BENCH_CPUPROFILE"); path != "" {
		profile = make(chan error, 1)
		go func() { profile <- saveProfile(path, "http://"+pprofAddr, 10*time.Second) }()
	}
	pid := h.p.cmd.Process.Pid
	cpu0 := procCPU(b, pid)
	pgCPU := func() time.Duration {
		if pg == nil {
			return 0
		}
		d, err := pg.CPU()
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	pg0 := pgCPU()
	b.ResetTimer()
	start := time.Now()
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	for i := range refresh {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				m := token(clients[i], url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh[i]}})
				if m == nil {
					return
				}
				refresh[i] = m["refresh_token"].(string)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := procCPU(b, pid) - cpu0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tokens/s")
	b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "hub-cpu-%")
	if pg != nil {
		b.ReportMetric(100*(pgCPU()-pg0).Seconds()/elapsed.Seconds(), "pg-cpu-%")
	}
	if profile != nil {
		if err := <-profile; err != nil {
			b.Log("cpu profile:", err)
		}
	}
}

// forwardedFor is a reverse proxy's transport: each request names another client address.
type forwardedFor struct {
	next http.RoundTripper
	n    *atomic.Uint32
}

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	n := f.n.Add(1)
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", n>>16&0xff, n>>8&0xff, n&0xff))
	return f.next.RoundTrip(r)
}

// procCPU returns the CPU time (user and system) process pid has used.
func procCPU(b testing.TB, pid int) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// saveProfile saves a CPU profile of d from a pprof server at base.
func saveProfile(path, base string, d time.Duration) error {
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, int(d.Seconds())))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.ReadFrom(resp.Body)
	return err
}
