package e2e

import (
	"bufio"
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// fleetctl logs a staff member in with the device grant; the hub API then accepts the access token
// in place of the bootstrap token.
func TestFleetctlLogin(t *testing.T) {
	h := newHub(t)
	creds, err := os.ReadFile(filepath.Join(h.dir, "initial-credentials"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`admin password \(user admin\): (\S+)`).FindSubmatch(creds)
	if m == nil {
		t.Fatalf("no admin password in initial-credentials:\n%s", creds)
	}
	tokFile := filepath.Join(t.TempDir(), "token")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "fleetctl"), "--hub", h.client.BaseURL, "login", "--save", tokFile)
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
	p, err := b.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 { // login form, then the approval page (whatever order the provider asks in)
		switch {
		case strings.Contains(p.Body, `name="password"`):
			p, err = b.Submit(p, url.Values{"username": {"admin"}, "password": {string(m[1])}})
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
	tok, err := os.ReadFile(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(tokFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	c := &api.Client{BaseURL: h.client.BaseURL, Token: strings.TrimSpace(string(tok))}
	if _, err := c.ListDevices(context.Background(), api.DeviceQuery{}); err != nil {
		t.Fatalf("API refused the access token: %v", err)
	}
	bad := &api.Client{BaseURL: h.client.BaseURL, Token: strings.TrimSpace(string(tok)) + "x"}
	var ae *api.Error
	if _, err := bad.ListDevices(context.Background(), api.DeviceQuery{}); !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("a forged token: %v", err)
	}
}
