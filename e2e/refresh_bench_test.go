package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/pkg/proctest"
)

// BenchmarkRefreshGrantHub: refresh-token grants against a real fleet-hub process over HTTP
// (loopback), from refreshWorkers clients each rotating its own grant, each rotation committed
// with synchronous=FULL. One op is one grant. It reports tokens/s and the hub's CPU use (percent
// of one core). KF_BENCH_CPUPROFILE=FILE saves a CPU profile of the hub during the run.
func BenchmarkRefreshGrantHub(b *testing.B) {
	const refreshWorkers = 16
	dir, httpAddr := b.TempDir(), proctest.FreeAddr(b)
	pprofAddr := proctest.FreeAddr(b)
	cmd := exec.Command(filepath.Join(binDir, "fleet-hub"), "--data", dir, "--http-addr", httpAddr,
		"--mqtt-addr", proctest.FreeAddr(b), "--pprof-addr", pprofAddr, "--log-level", "warn")
	logf, err := os.Create(filepath.Join(dir, "hub.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logf.Close()
		if b.Failed() {
			out, _ := os.ReadFile(logf.Name())
			b.Logf("--- hub log ---\n%s", out[max(0, len(out)-20000):])
		}
	})
	base := "http://" + httpAddr
	proctest.Eventually(b, 30*time.Second, "hub healthy", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	creds, err := os.ReadFile(filepath.Join(dir, "initial-credentials"))
	if err != nil {
		b.Fatal(err)
	}
	password := credential(b, creds, `admin password \(user admin\)`)
	secret := credential(b, creds, `client secret fleet-console`)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: refreshWorkers}}
	token := func(form url.Values) map[string]any {
		req, _ := http.NewRequest(http.MethodPost, base+"/oidc/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("fleet-console", secret)
		resp, err := client.Do(req)
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
	refresh := make([]string, refreshWorkers)
	redirect := base + "/console/callback"
	for i := range refresh {
		verifier := oauth2.GenerateVerifier()
		q := url.Values{"client_id": {"fleet-console"}, "redirect_uri": {redirect}, "response_type": {"code"},
			"scope": {"openid offline_access"}, "state": {"s"},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
		// Redirects inside /oidc/ are followed, the one to the console's callback returned.
		cb, err := identitytest.NewBrowserFor(base+"/oidc/").Login(base+"/oidc/authorize?"+q.Encode(), "admin", password)
		if err != nil {
			b.Fatal(err)
		}
		m := token(url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")},
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
	cpu0 := procCPU(b, cmd.Process.Pid)
	b.ResetTimer()
	start := time.Now()
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	for i := range refresh {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				m := token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh[i]}})
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
	cpu := procCPU(b, cmd.Process.Pid) - cpu0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tokens/s")
	b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "hub-cpu-%")
	if profile != nil {
		if err := <-profile; err != nil {
			b.Log("cpu profile:", err)
		}
	}
}

// credential finds "NAME: VALUE" in a hub's initial-credentials file.
func credential(b *testing.B, creds []byte, name string) string {
	m := regexp.MustCompile(name + `: (\S+)`).FindSubmatch(creds)
	if m == nil {
		b.Fatalf("no %s in initial-credentials", name)
	}
	return string(m[1])
}

// procCPU returns the CPU time (user and system) process pid has used.
func procCPU(b *testing.B, pid int) time.Duration {
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

// saveProfile saves a CPU profile of secs from a pprof server at base.
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
