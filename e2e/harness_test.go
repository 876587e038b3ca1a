package e2e

import (
	"bufio"
	"context"
	"crypto/x509"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/sqlitex"

	_ "github.com/mattn/go-sqlite3"
)

var binDir string

func TestMain(m *testing.M) {
	if os.Getenv(probeEnv) != "" { // this binary run again as the soak's health prober
		os.Exit(probeMain())
	}
	dir, err := os.MkdirTemp("", "kf-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	cmd := exec.Command("go", "build", "-o", dir+"/", "../hub/cmd/fleet-hub", "../agent/cmd/kiosk-agent", "../drivers/cmd/devsim", "../console/cmd/fleetctl", "../console/cmd/fleet-console")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a child process whose output goes to a log file shown when the test fails.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, args[0]), args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	// In a process group of its own, so that kill9 also ends what it started (a launcher's agent).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() {
		if t.Failed() && !p.exited() {
			// A goroutine dump in the log shows where a stuck process was.
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-p.done:
			case <-time.After(2 * time.Second):
			}
		}
		p.kill9()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 30000 {
				b = b[len(b)-30000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, b)
		}
	})
	return p
}

func (p *proc) kill9() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop asks the process to stop (SIGTERM) and waits for it.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.t.Errorf("%s did not stop within 15 s of SIGTERM", p.name)
		p.kill9()
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// handedOut holds every address freeAddr returned in this test binary.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// freeAddr returns a loopback address free now and never returned before in this test binary: the
// kernel may give a port just closed to the next listen on :0, and a hub once got the same one for
// its HTTP and its MQTT listeners ("bind: address already in use").
func freeAddr(t testing.TB) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
	t.Fatal("no loopback port that was not handed out before in 100 tries")
	return ""
}

// hub is a fleet-hub process with fixed addresses, so it can be killed and restarted in place. It
// serves HTTPS with a certificate of its CA (caFile), which client trusts.
type hub struct {
	t        testing.TB
	name     string // of its log
	dir      string
	httpAddr string
	mqttAddr string
	args     []string // more flags for fleet-hub (a replica's store, name...; a later one wins over the harness's)
	caFile   string
	p        *proc
	client   *api.Client
}

func newHub(t testing.TB, args ...string) *hub {
	h := unstartedHub(t)
	h.args = args
	h.start()
	h.readToken()
	return h
}

// readToken gives the client the bootstrap token the started hub wrote.
func (h *hub) readToken() {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, "bootstrap-token"))
	if err != nil {
		h.t.Fatal(err)
	}
	h.client.Token = strings.TrimSpace(string(b))
}

// unstartedHub returns a hub with its folder and addresses chosen, not yet started.
func unstartedHub(t testing.TB) *hub {
	h := &hub{t: t, name: "hub", dir: t.TempDir(), httpAddr: freeAddr(t), mqttAddr: freeAddr(t)}
	h.caFile = filepath.Join(h.dir, "ca", "ca.crt")
	h.client = &api.Client{BaseURL: "https://" + h.httpAddr}
	return h
}

func (h *hub) start() {
	h.t.Helper()
	h.p = start(h.t, h.name, append([]string{"fleet-hub", "--data", h.dir, "--http-addr", h.httpAddr, "--mqtt-addr", h.mqttAddr,
		"--log-level", "debug"}, h.args...)...)
	waitFor(h.t, 20*time.Second, "hub healthy", func() bool {
		if h.p.exited() {
			h.t.Fatalf("hub exited during start")
		}
		return h.healthy()
	})
}

// healthy reports whether the hub answers GET /healthz over HTTPS; once the hub has made its CA,
// h.client trusts it.
func (h *hub) healthy() bool {
	if h.client.HTTP == nil {
		roots, err := api.LoadCA(h.caFile)
		if err != nil {
			return false
		}
		tr := api.Transport(roots)
		h.t.Cleanup(tr.CloseIdleConnections)
		h.client.HTTP = &http.Client{Transport: tr}
	}
	hc := http.Client{Timeout: time.Second, Transport: h.client.HTTP.Transport}
	resp, err := hc.Get(h.client.BaseURL + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (h *hub) site(id string) {
	h.t.Helper()
	_, err := h.client.CreateSite(context.Background(), fleet.Site{ID: id, Name: "Hall " + id, Region: "440305"})
	if err != nil {
		h.t.Fatal(err)
	}
}

// enroll enrolls a new kiosk at site and returns its data folder and device ID.
func (h *hub) enroll(site string) (dir, id string) {
	h.t.Helper()
	tok, err := h.client.CreateToken(context.Background(), api.CreateToken{SiteID: site})
	if err != nil {
		h.t.Fatal(err)
	}
	dir = h.t.TempDir()
	out, err := exec.Command(filepath.Join(binDir, "kiosk-agent"), "enroll", "--data", dir, "--hub", h.client.BaseURL, "--token", tok.Secret).CombinedOutput()
	if err != nil {
		h.t.Fatalf("enroll: %v\n%s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		h.t.Fatalf("enroll output %q", out)
	}
	return dir, f[2]
}

func startAgent(t testing.TB, name, dir string, args ...string) *proc {
	base := []string{"kiosk-agent", "run", "--data", dir, "--log-level", "debug", "--ack-timeout", "2s", "--max-backoff", "1s"}
	return start(t, name, append(base, args...)...)
}

// records returns every record the hub holds for a device, in per-device order.
func (h *hub) records(id, kind string) []fleet.Record {
	h.t.Helper()
	var all []fleet.Record
	var after int64
	for {
		r, err := h.client.Records(context.Background(), id, api.RecordQuery{Kind: kind, After: after, Limit: 1000})
		if err != nil {
			h.t.Fatal(err)
		}
		all = append(all, r.Records...)
		if len(r.Records) < 1000 {
			return all
		}
		after = r.Next
	}
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkSeqs verifies that recs (one device, one epoch) are seq 1..n exactly once, in order.
func checkSeqs(t *testing.T, recs []fleet.Record, n uint64) {
	t.Helper()
	if uint64(len(recs)) != n {
		t.Errorf("hub holds %d records, want %d", len(recs), n)
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d (want %d): lost, duplicated or out of order", i, r.Seq, i+1)
		}
	}
}

func integrity(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := sqlitex.IntegrityCheck(context.Background(), db); err != nil {
		t.Errorf("%s: %v", path, err)
	}
}

// outboxNext reads the agent's next sequence number from its (stopped) outbox.
func outboxNext(t *testing.T, dir string) uint64 {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var next uint64
	if err := db.QueryRow(outboxNextSQL).Scan(&next); err != nil {
		t.Fatal(err)
	}
	return next
}

const outboxNextSQL = `SELECT next_seq FROM outbox_meta WHERE id = 1`

var logMu sync.Mutex

func grepFile(t *testing.T, path, needle string) bool {
	logMu.Lock()
	defer logMu.Unlock()
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), needle) {
			return true
		}
	}
	return false
}

// countLines counts the lines of a log file that contain needle.
func countLines(path, needle string) int {
	logMu.Lock()
	defer logMu.Unlock()
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), needle)
}

// metric reads one unlabelled counter or gauge from the hub's /metrics (0 if absent).
func (h *hub) metric(name string) float64 {
	h.t.Helper()
	resp, err := h.client.HTTP.Get(h.client.BaseURL + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// postForm posts a form to the hub and returns the HTTP status.
func (h *hub) postForm(path string, form map[string]string) (int, error) {
	v := url.Values{}
	for k, s := range form {
		v.Set(k, s)
	}
	resp, err := h.client.HTTP.PostForm(h.client.BaseURL+path, v)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// roots returns a pool holding the hub's CA.
func (h *hub) roots() *x509.CertPool {
	h.t.Helper()
	roots, err := api.LoadCA(h.caFile)
	if err != nil {
		h.t.Fatal(err)
	}
	return roots
}
