package e2e

import (
	"bufio"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
)

// adminPassword returns the password of the admin account from the hub's initial-credentials file.
func adminPassword(t testing.TB, h *hub) string {
	t.Helper()
	return credential(t, h, `admin password \(user admin\)`)
}

// credential returns VALUE of the line "NAME: VALUE" (name a regular expression) in the hub's
// initial-credentials file.
func credential(t testing.TB, h *hub, name string) string {
	t.Helper()
	creds, err := os.ReadFile(filepath.Join(h.dir, "initial-credentials"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(name + `: (\S+)`).FindSubmatch(creds)
	if m == nil {
		t.Fatalf("no %s in initial-credentials:\n%s", name, creds)
	}
	return string(m[1])
}

// fleetctlLogin runs `fleetctl login` against h and plays the staff member's browser: it opens the
// verification link, logs in as username and approves. It returns the file fleetctl saved the
// access token in.
func fleetctlLogin(t *testing.T, h *hub, username, password string) string {
	t.Helper()
	tokFile := filepath.Join(t.TempDir(), "token")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "fleetctl"), "--hub", h.client.BaseURL, "--ca", h.caFile, "login", "--save", tokFile)
	cmd.Env = append(os.Environ(), "KF_TOKEN=", "KF_TOKEN_FILE=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	link := ""
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if l, ok := strings.CutPrefix(sc.Text(), "To log in, open "); ok {
			link = strings.TrimSpace(l)
			break
		}
	}
	if _, err := url.Parse(link); err != nil || link == "" {
		t.Fatalf("no verification link from fleetctl login (%v)", err)
	}
	go func() { // drain
		for sc.Scan() {
		}
	}()

	b := identitytest.NewBrowserFor(h.client.BaseURL)
	b.C.Transport = h.client.HTTP.Transport
	p, err := b.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 { // login form, then the approval page (whatever order the provider asks in)
		switch {
		case strings.Contains(p.Body, `name="password"`):
			p, err = b.Submit(p, url.Values{"username": {username}, "password": {password}})
		case strings.Contains(p.Body, `value="approve"`):
			p, err = b.Submit(p, url.Values{"action": {"approve"}})
		default:
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("fleetctl login: %v (last page %d: %.300s)", err, p.Status, p.Body)
	}
	return tokFile
}
