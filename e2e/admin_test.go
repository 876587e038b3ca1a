package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type fleetctlResult struct {
	code           int
	stdout, stderr string
}

// fleetctlAs runs the fleetctl binary against h with token as KF_TOKEN_FILE (a file) or, when it
// does not name a file, as KF_TOKEN.
func fleetctlAs(t *testing.T, h *hub, token string, stdin string, args ...string) fleetctlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "fleetctl"), append([]string{"--hub", h.client.BaseURL, "--ca", h.caFile}, args...)...)
	env := append(os.Environ(), "KF_TOKEN=", "KF_TOKEN_FILE=", "KF_HUB=")
	if _, err := os.Stat(token); err == nil {
		env = append(env, "KF_TOKEN_FILE="+token)
	} else {
		env = append(env, "KF_TOKEN="+token)
	}
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("fleetctl %v: %v", args, err)
	}
	t.Logf("fleetctl %s -> %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), errb.String())
	return fleetctlResult{code, out.String(), errb.String()}
}

func (r fleetctlResult) want(t *testing.T, code int, stdout, stderr string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d", r.code, code)
	}
	if !strings.Contains(r.stdout, stdout) {
		t.Errorf("stdout lacks %q", stdout)
	}
	if !strings.Contains(r.stderr, stderr) {
		t.Errorf("stderr lacks %q", stderr)
	}
}

// An admin logged in with fleetctl registers a channel and creates a staff account through the
// provider's admin API; the API refuses the hub's bootstrap token, a non-admin and a bad
// registration with its own message.
func TestAdminClientsAndStaff(t *testing.T) {
	h := newHub(t)
	admin := fleetctlLogin(t, h, "admin", adminPassword(t, h))

	// A confidential channel: its secret is shown by create, and never again.
	r := fleetctlAs(t, h, admin, "", "clients", "create", "e2e-portal", "--name", "E2E web portal", "--confidential",
		"--redirect-uri", "https://portal.example.gov.cn/callback", "--grant-type", "authorization_code", "--grant-type", "refresh_token")
	r.want(t, 0, "shown this once only", "")
	secret := ""
	if i := strings.Index(r.stdout, "shown this once only"); i >= 0 {
		if f := strings.Fields(r.stdout[i:]); len(f) > 0 {
			secret = f[len(f)-1]
		}
	}
	if len(secret) < 20 {
		t.Fatalf("no client secret in %q", r.stdout)
	}
	r = fleetctlAs(t, h, admin, "", "clients", "list")
	r.want(t, 0, "e2e-portal", "")
	if !strings.Contains(r.stdout, "https://portal.example.gov.cn/callback") || !strings.Contains(r.stdout, "fleetctl") {
		t.Errorf("clients list lacks the new client's redirect URI or fleetctl's own registration")
	}
	r = fleetctlAs(t, h, admin, "", "clients", "show", "e2e-portal", "-o", "json")
	var got struct {
		ID           string   `json:"id"`
		Confidential bool     `json:"confidential"`
		Pairwise     bool     `json:"pairwise"`
		GrantTypes   []string `json:"grantTypes"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.ID != "e2e-portal" || !got.Confidential || !got.Pairwise || len(got.GrantTypes) != 2 {
		t.Errorf("clients show: %+v, %v", got, err)
	}
	for _, out := range []string{r.stdout, fleetctlAs(t, h, admin, "", "clients", "list", "-o", "json").stdout} {
		if strings.Contains(out, secret) {
			t.Error("the client secret was shown again")
		}
	}

	// A staff account, then its roles.
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("fieldops-pass-2026\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = fleetctlAs(t, h, admin, "", "staff", "create", "fieldops1", "--roles", "fieldops", "--name", "Field Ops One", "--password-file", pw)
	r.want(t, 0, "fieldops1", "")
	if !strings.Contains(r.stdout, "fieldops") || strings.Contains(r.stdout, "fieldops-pass") {
		t.Errorf("staff create output %q", r.stdout)
	}
	fleetctlAs(t, h, admin, "", "staff", "create", "fieldops1", "--roles", "fieldops", "--password-file", pw).
		want(t, 1, "", "conflict (HTTP 409): username taken")

	// Refusals, with the API's message and fleetctl's exit codes.
	fleetctlAs(t, h, h.client.Token, "", "clients", "list").
		want(t, 4, "", "unauthorized (HTTP 401): missing, unknown, revoked or expired access token")
	fleetctlAs(t, h, admin, "", "clients", "create", "e2e-bad", "--redirect-uri", "https://*.example.gov.cn/cb").
		want(t, 1, "", `bad_request (HTTP 400): redirect URI "https://*.example.gov.cn/cb": must be absolute, without fragment or wildcard`)
	fleetctlAs(t, h, admin, "", "staff", "create", "x1", "--roles", "root", "--password-file", pw).
		want(t, 1, "", `unknown staff role "root"`)

	// The new account logs in; without the admin role the admin API is closed to it.
	fieldops := fleetctlLogin(t, h, "fieldops1", "fieldops-pass-2026")
	fleetctlAs(t, h, fieldops, "", "clients", "list").want(t, 4, "", "forbidden (HTTP 403): role admin required")

	// Roles and password set from stdin; the registration deleted.
	fleetctlAs(t, h, admin, "new-fieldops-pass\n", "staff", "update", "fieldops1", "--roles", "fieldops,reviewer", "--password-file", "-").
		want(t, 0, "fieldops,reviewer", "")
	r = fleetctlAs(t, h, admin, "", "staff", "list")
	r.want(t, 0, "fieldops1", "")
	if !strings.Contains(r.stdout, "FAILED LOGINS") || !strings.Contains(r.stdout, "fieldops,reviewer") || strings.Contains(r.stdout, "LOCKED") {
		t.Errorf("staff list:\n%s", r.stdout)
	}
	fleetctlAs(t, h, fieldops, "", "staff", "list").want(t, 4, "", "forbidden (HTTP 403): role admin required")
	fleetctlAs(t, h, admin, "", "staff", "update", "nobody", "--roles", "fieldops").want(t, 3, "", "no such staff account")
	fleetctlAs(t, h, admin, "", "clients", "delete", "e2e-portal").want(t, 0, "Deleted client e2e-portal", "")
	fleetctlAs(t, h, admin, "", "clients", "show", "e2e-portal").want(t, 3, "", "not_found (HTTP 404): no such client")
}
