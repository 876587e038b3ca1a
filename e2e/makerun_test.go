package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/ipp/ippeve"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// The simulated kiosk of make run, as devsim kiosk configures it.
var makeRunPeripherals = []string{"a4", "idcard0", "qr0", "receipt0", "scan0"}

// make run, as a newcomer types it in a fresh clone (the binaries are this test's own build, so
// make's build step is skipped): the data folder is the default relative ./var, the ports are
// free ones. It stays up for 30 s with the kiosk online and its five peripherals connected, and
// the console answers; a child killed on purpose makes it stop everything and fail, naming the
// child. Started again on the same data, Ctrl-C (SIGINT to the process group, as a terminal
// sends it) stops everything within 5 s with exit status 0. Nothing is left running.
func TestMakeRun(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping make run (about a minute) in -short mode")
	}
	for _, b := range []string{"git", "make", "bash", "scanimage"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipping: %s not installed (make run-deps installs the simulated kiosk's peers)", b)
		}
	}
	if _, err := ippeve.LookPath("ippeveprinter"); err != nil {
		t.Skipf("skipping: %v", err)
	}
	dir := cloneCheckout(t)
	if err := os.CopyFS(filepath.Join(dir, "bin"), os.DirFS(binDir)); err != nil {
		t.Fatal(err)
	}

	// The first run: a fresh clone, so it enrolls the kiosk.
	r := startRun(t, dir, "make", "-o", "build", "run")
	r.waitRunning(t, 120*time.Second)
	c := r.client(t)
	id := r.deviceID(t)
	// The hub's URLs are https, with the CA to trust for curl.
	caFile := filepath.Join(r.dir, "var", "hub", "ca", "ca.crt")
	for _, want := range []string{"hub HTTP API   " + c.BaseURL + "/api/v1", "curl --cacert " + caFile + " " + c.BaseURL + "/healthz"} {
		if !strings.Contains(r.output(), want) {
			t.Errorf("make run does not print %q:\n%s", want, r.output())
		}
	}
	waitFor(t, 30*time.Second, "the kiosk online with its peripherals", func() bool { return kioskUp(c, id) == nil })
	for stayed := time.Now(); time.Since(stayed) < 30*time.Second; time.Sleep(time.Second) {
		if r.exited() {
			t.Fatalf("make run stopped by itself after %s:\n%s", time.Since(stayed).Round(time.Second), r.output())
		}
	}
	if err := kioskUp(c, id); err != nil {
		t.Fatalf("after 30 s: %v", err)
	}
	if !strings.Contains(r.output(), "staff login    user admin, password in") {
		t.Errorf("make run does not print how staff log in to the console:\n%s", r.output())
	}
	page := r.staffPage(t, "/devices/"+id)
	for _, p := range makeRunPeripherals {
		if !strings.Contains(page, p) {
			t.Errorf("the console's page of %s does not show peripheral %s:\n%s", id, p, page)
		}
	}

	devsim := r.child(t, "bin/devsim")
	if err := syscall.Kill(devsim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := r.wait(t, 10*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
		t.Errorf("make run after devsim was killed: %v, want a non-zero exit", err)
	}
	if out := r.output(); !strings.Contains(out, "run: devsim exited (status 137)") || !strings.Contains(out, "devsim.log:") {
		t.Errorf("make run's output does not say that devsim died and show its log:\n%s", out)
	}
	r.noneLeft(t)

	// The second run, on the same data; started as make run starts it.
	r = startRun(t, dir, "./scripts/run.sh")
	r.waitRunning(t, 60*time.Second)
	c = r.client(t)
	waitFor(t, 30*time.Second, "the kiosk online with its peripherals", func() bool { return kioskUp(c, id) == nil })
	if err := syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := r.wait(t, 5*time.Second); err != nil {
		t.Errorf("run.sh after Ctrl-C: %v, want exit status 0\n%s", err, r.output())
	}
	r.noneLeft(t)
	if out := r.output(); !strings.Contains(out, "stopped. Data kept in "+filepath.Join(dir, "var")) {
		t.Errorf("run.sh's output after Ctrl-C:\n%s", out)
	}
}

// cloneCheckout clones the checkout this test runs in, with its uncommitted changes to tracked
// files, into a temporary folder.
func cloneCheckout(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "kioskfleet")
	git := func(stdin []byte, args ...string) []byte {
		t.Helper()
		// The checkout may belong to another user than the one running the tests (CI as root).
		cmd := exec.Command("git", append([]string{"-c", "safe.directory=*"}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return out
	}
	if _, err := exec.Command("git", "-c", "safe.directory=*", "-C", root, "rev-parse", "--git-dir").Output(); err != nil {
		t.Skipf("skipping: %s is not a git checkout", root)
	}
	git(nil, "clone", "--quiet", root, dir)
	if diff := git(nil, "-C", root, "diff", "HEAD", "--binary"); len(diff) > 0 {
		git(diff, "-C", dir, "apply", "--whitespace=nowarn")
	}
	return dir
}

// makeRun is one make run (or scripts/run.sh) in its own process group.
type makeRun struct {
	dir   string
	cmd   *exec.Cmd
	out   string // the file its standard output and error go to
	addrs map[string]string
	done  chan struct{}
	err   error
}

func startRun(t *testing.T, dir string, args ...string) *makeRun {
	t.Helper()
	r := &makeRun{dir: dir, out: filepath.Join(t.TempDir(), "out"), done: make(chan struct{}), addrs: map[string]string{}}
	out, err := os.Create(r.out)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "KF_") })
	for _, k := range []string{"KF_HTTP_ADDR", "KF_MQTT_ADDR", "KF_CONSOLE_ADDR", "KF_LOCAL_API_ADDR"} {
		r.addrs[k] = freeAddr(t)
		env = append(env, k+"="+r.addrs[k])
	}
	r.cmd = exec.Command(args[0], args[1:]...)
	r.cmd.Dir, r.cmd.Env, r.cmd.Stdout, r.cmd.Stderr = dir, env, out, out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL) // whatever is left of the process group
		<-r.done
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", strings.Join(args, " "), r.output())
			for _, f := range []string{"hub", "console", "devsim", "agent"} {
				b, _ := os.ReadFile(filepath.Join(dir, "var", "logs", f+".log"))
				t.Logf("--- var/logs/%s.log (tail) ---\n%s", f, tail(b, 3000))
			}
		}
	})
	return r
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (r *makeRun) output() string {
	b, _ := os.ReadFile(r.out)
	return string(b)
}

func (r *makeRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *makeRun) waitRunning(t *testing.T, d time.Duration) {
	t.Helper()
	started := time.Now()
	waitFor(t, d, "kioskfleet is running", func() bool {
		if r.exited() {
			t.Fatalf("%s exited before it was running: %v\n%s", r.cmd, r.err, r.output())
		}
		return strings.Contains(r.output(), "kioskfleet is running.")
	})
	t.Logf("%s: running after %s", strings.Join(r.cmd.Args, " "), time.Since(started).Round(10*time.Millisecond))
}

// wait waits for the run to exit by itself within d and returns how it exited.
func (r *makeRun) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(d):
		t.Fatalf("%s still running %s later:\n%s", r.cmd, d, r.output())
		return nil
	}
}

func (r *makeRun) client(t *testing.T) *api.Client {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, "var", "hub", "bootstrap-token"))
	if err != nil {
		t.Fatal(err)
	}
	roots, err := api.LoadCA(filepath.Join(r.dir, "var", "hub", "ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	tr := api.Transport(roots)
	t.Cleanup(tr.CloseIdleConnections)
	return &api.Client{BaseURL: "https://" + r.addrs["KF_HTTP_ADDR"], Token: strings.TrimSpace(string(b)), HTTP: &http.Client{Transport: tr}}
}

// staffPage fetches a console page as the hub's first-start admin, logging in through the hub's
// login page as a browser does (the console is not in setup mode: anonymous visitors are sent to
// log in).
func (r *makeRun) staffPage(t *testing.T, path string) string {
	t.Helper()
	creds, err := os.ReadFile(filepath.Join(r.dir, "var", "hub", "initial-credentials"))
	if err != nil {
		t.Fatal(err)
	}
	var password string
	for l := range strings.Lines(string(creds)) {
		if p, ok := strings.CutPrefix(l, "admin password (user admin): "); ok {
			password = strings.TrimSpace(p)
		}
	}
	b := identitytest.NewBrowserFor("https://" + r.addrs["KF_HTTP_ADDR"])
	b.C.Transport = r.client(t).HTTP.Transport
	u := "http://" + r.addrs["KF_CONSOLE_ADDR"] + path
	loggedIn := false
	for range 8 {
		p, err := b.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(p.Body, `name="password"`) && !loggedIn {
			if p, err = b.Submit(p, url.Values{"username": {"admin"}, "password": {password}}); err != nil {
				t.Fatal(err)
			}
			loggedIn = true
		}
		if p.Loc == "" {
			if !loggedIn || p.Status != http.StatusOK {
				t.Fatalf("console page %s as staff: status %d, logged in %v: %.400s", path, p.Status, loggedIn, p.Body)
			}
			return p.Body
		}
		next, err := p.URL.Parse(p.Loc)
		if err != nil {
			t.Fatal(err)
		}
		u = next.String()
	}
	t.Fatalf("console page %s: too many redirects", path)
	return ""
}

func (r *makeRun) deviceID(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, "var", "agent", "identity.json"))
	if err != nil {
		t.Fatal(err)
	}
	var id struct{ DeviceID string }
	if err := json.Unmarshal(b, &id); err != nil || id.DeviceID == "" {
		t.Fatalf("var/agent/identity.json: %v %s", err, b)
	}
	return id.DeviceID
}

// groupProcs lists the live (not zombie) processes of the run's process group: pid -> command.
func (r *makeRun) groupProcs() map[int]string {
	procs := map[int]string{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f) // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses
		if err != nil {
			continue
		}
		var pid, ppid, pgrp int
		var state string
		fmt.Sscan(string(b), &pid)
		if _, err := fmt.Sscan(string(b[bytes.LastIndexByte(b, ')')+1:]), &state, &ppid, &pgrp); err == nil && pgrp == r.cmd.Process.Pid && state != "Z" {
			cmd, _ := os.ReadFile(filepath.Join(filepath.Dir(f), "cmdline"))
			procs[pid] = strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return procs
}

// child finds the pid of the run's child whose command starts with suffix.
func (r *makeRun) child(t *testing.T, suffix string) int {
	t.Helper()
	procs := r.groupProcs()
	for pid, cmd := range procs {
		if exe, _, _ := strings.Cut(cmd, " "); strings.HasSuffix(exe, suffix) {
			return pid
		}
	}
	t.Fatalf("no %s among %v", suffix, procs)
	return 0
}

// noneLeft checks that every process of the run's group is gone (orphans of a killed child are
// given a second to die).
func (r *makeRun) noneLeft(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		left := r.groupProcs()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still running after %s ended: %v", r.cmd, left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kioskUp says what is missing for the kiosk to be online with make run's peripherals connected.
func kioskUp(c *api.Client, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := c.Device(ctx, id)
	if err != nil {
		return err
	}
	if !d.Device.Online {
		return fmt.Errorf("kiosk %s offline", id)
	}
	var inv struct {
		Devices []struct {
			ID        string
			Connected bool
		}
	}
	if err := json.Unmarshal(d.Device.Peripherals, &inv); err != nil {
		return fmt.Errorf("kiosk %s peripherals %s: %w", id, d.Device.Peripherals, err)
	}
	var got []string
	for _, p := range inv.Devices {
		if p.Connected {
			got = append(got, p.ID)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, makeRunPeripherals) {
		return fmt.Errorf("kiosk %s has peripherals %v connected, want %v", id, got, makeRunPeripherals)
	}
	return nil
}
