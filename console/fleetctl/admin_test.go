package fleetctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// fakeProvider serves the OpenID Provider's admin API (/oidc/admin/...) with the bodies, status
// codes and messages of hub/identity's handlers. It takes testToken as an admin's access token
// and fieldopsToken as the token of an account without the admin role.
type fakeProvider struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []request
	clients  []api.ClientRegistration
	staff    map[string]api.StaffAccount
}

const fieldopsToken = "fieldops-access-token"

func newFakeProvider(t *testing.T) *fakeProvider {
	f := &fakeProvider{
		clients: []api.ClientRegistration{
			{ID: "fleetctl", Name: "fleetctl", AppType: "native", GrantTypes: []string{"urn:ietf:params:oauth:grant-type:device_code"},
				RedirectURIs: []string{}, PostLogoutURIs: []string{}, FirstParty: true},
			{ID: "web-portal", Name: "Citizen web portal", AppType: "web", GrantTypes: []string{"authorization_code", "refresh_token"},
				RedirectURIs: []string{"https://portal.example.gov.cn/callback"}, PostLogoutURIs: []string{}, Pairwise: true, Confidential: true},
		},
		staff: map[string]api.StaffAccount{"admin": {ID: "u_admin", Username: "admin", Name: "Administrator", Roles: []string{"admin"}}},
	}
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(w http.ResponseWriter, status int, code, msg string) {
		reply(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
	}
	strict := func(w http.ResponseWriter, r *http.Request, v any, what string) bool {
		d := json.NewDecoder(r.Body)
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			fail(w, http.StatusBadRequest, "bad_request", "malformed "+what+": "+err.Error())
			return false
		}
		return true
	}
	admin := func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			switch r.Header.Get("Authorization") {
			case "Bearer " + testToken:
				f.mu.Lock()
				defer f.mu.Unlock()
				next(w, r)
			case "Bearer " + fieldopsToken:
				fail(w, http.StatusForbidden, "forbidden", "role admin required")
			default:
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				fail(w, http.StatusUnauthorized, "unauthorized", "missing, unknown, revoked or expired access token")
			}
		}
	}
	find := func(id string) int {
		return slices.IndexFunc(f.clients, func(c api.ClientRegistration) bool { return c.ID == id })
	}
	validRoles := func(w http.ResponseWriter, roles []string) bool {
		for _, r := range roles {
			if !slices.Contains([]string{"admin", "fieldops", "reviewer", "developer"}, r) {
				fail(w, http.StatusBadRequest, "bad_request", `store: invalid: unknown staff role "`+r+`"`)
				return false
			}
		}
		return true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /oidc/admin/clients", admin(func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, map[string]any{"clients": f.clients})
	}))
	mux.HandleFunc("POST /oidc/admin/clients", admin(func(w http.ResponseWriter, r *http.Request) {
		var c api.ClientRegistration
		if !strict(w, r, &c, "client") {
			return
		}
		for _, u := range append(slices.Clone(c.RedirectURIs), c.PostLogoutURIs...) {
			if u == "" || strings.ContainsAny(u, "#*") {
				fail(w, http.StatusBadRequest, "bad_request", `redirect URI "`+u+`": must be absolute, without fragment or wildcard`)
				return
			}
		}
		if find(c.ID) >= 0 {
			fail(w, http.StatusConflict, "conflict", "client exists")
			return
		}
		if c.AppType == "" {
			c.AppType = "web"
		}
		if !c.FirstParty {
			c.Pairwise = true
		}
		stored := c
		stored.Secret = ""
		f.clients = append(f.clients, stored)
		if c.Confidential {
			c.Secret = "s3cr3t-shown-once"
		}
		reply(w, http.StatusCreated, c)
	}))
	mux.HandleFunc("GET /oidc/admin/clients/{id}", admin(func(w http.ResponseWriter, r *http.Request) {
		if i := find(r.PathValue("id")); i >= 0 {
			reply(w, http.StatusOK, f.clients[i])
			return
		}
		fail(w, http.StatusNotFound, "not_found", "no such client")
	}))
	mux.HandleFunc("DELETE /oidc/admin/clients/{id}", admin(func(w http.ResponseWriter, r *http.Request) {
		if i := find(r.PathValue("id")); i >= 0 {
			f.clients = slices.Delete(f.clients, i, i+1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		fail(w, http.StatusNotFound, "not_found", "no such client")
	}))
	mux.HandleFunc("GET /oidc/admin/staff", admin(func(w http.ResponseWriter, r *http.Request) {
		out := api.Staff{Staff: []api.StaffAccount{}}
		for _, v := range f.staff {
			out.Staff = append(out.Staff, v)
		}
		slices.SortFunc(out.Staff, func(a, b api.StaffAccount) int { return strings.Compare(a.Username, b.Username) })
		reply(w, http.StatusOK, out)
	}))
	mux.HandleFunc("POST /oidc/admin/staff", admin(func(w http.ResponseWriter, r *http.Request) {
		var req api.StaffRequest
		if !strict(w, r, &req, "staff account") {
			return
		}
		if len(req.Password) < 8 {
			fail(w, http.StatusBadRequest, "bad_request", "store: invalid: password must have 8 to 256 characters")
			return
		}
		if !validRoles(w, req.Roles) {
			return
		}
		if _, ok := f.staff[req.Username]; ok {
			fail(w, http.StatusConflict, "conflict", "username taken")
			return
		}
		v := api.StaffAccount{ID: "u_" + req.Username, Username: req.Username, Name: req.Name, Roles: req.Roles, Regions: req.Regions}
		f.staff[req.Username] = v
		reply(w, http.StatusCreated, v)
	}))
	mux.HandleFunc("PUT /oidc/admin/staff/{username}", admin(func(w http.ResponseWriter, r *http.Request) {
		var req api.StaffRequest
		if !strict(w, r, &req, "staff account") || !validRoles(w, req.Roles) {
			return
		}
		v, ok := f.staff[r.PathValue("username")]
		if !ok {
			fail(w, http.StatusNotFound, "not_found", "no such staff account")
			return
		}
		v.Roles, v.Regions = req.Roles, req.Regions // the API replaces both
		f.staff[v.Username] = v
		reply(w, http.StatusOK, v)
	}))
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.requests = append(f.requests, request{r.Method, r.URL.Path, r.URL.RawQuery, string(body)})
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeProvider) env(extra ...string) map[string]string {
	m := map[string]string{"KF_HUB": f.srv.URL}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

func (f *fakeProvider) lastBody(t *testing.T, method, path string) map[string]any {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.requests) - 1; i >= 0; i-- {
		if r := f.requests[i]; r.Method == method && r.Path == path {
			var m map[string]any
			if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
				t.Fatalf("%s %s body %q: %v", method, path, r.Body, err)
			}
			return m
		}
	}
	t.Fatalf("no %s %s", method, path)
	return nil
}

func TestClientsListTableAndJSON(t *testing.T) {
	f := newFakeProvider(t)
	r := run(t, nil, f.env(), "clients", "list")
	r.want(t, ExitOK, []string{"ID", "REDIRECT URIS", "web-portal", "confidential", "authorization_code,refresh_token", "https://portal.example.gov.cn/callback"}, nil)
	if l := line(t, r.stdout, "fleetctl "); !strings.Contains(l, "public") || !strings.Contains(l, "native") || !strings.Contains(l, " device_code ") {
		t.Errorf("fleetctl row %q", l)
	}

	r = run(t, nil, f.env(), "clients", "list", "-o", "json")
	r.want(t, ExitOK, nil, nil)
	var out api.Clients
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.Clients) != 2 || out.Clients[1].ID != "web-portal" || !out.Clients[1].Confidential {
		t.Errorf("JSON %+v, %v", out, err)
	}
}

func TestClientsShowAndNotFound(t *testing.T) {
	f := newFakeProvider(t)
	r := run(t, nil, f.env(), "clients", "show", "web-portal")
	r.want(t, ExitOK, []string{"Citizen web portal", "confidential"}, nil)
	if l := line(t, r.stdout, "Pairwise:"); !strings.HasSuffix(l, "yes") {
		t.Errorf("pairwise line %q", l)
	}
	run(t, nil, f.env(), "clients", "get", "nope").want(t, ExitNotFound, nil, []string{"show client nope: not_found (HTTP 404): no such client"})
	run(t, nil, f.env(), "clients", "get").want(t, ExitUsage, nil, []string{"missing ID"})
}

func TestClientsCreateShowsSecretOnce(t *testing.T) {
	f := newFakeProvider(t)
	r := run(t, nil, f.env(), "clients", "create", "mini-program", "--name", "WeChat mini-program", "--confidential",
		"--redirect-uri", "https://mp.example.gov.cn/cb", "--grant-type", "authorization_code", "--grant-type", "refresh_token")
	r.want(t, ExitOK, []string{"mini-program", "WeChat mini-program", "shown this once only", "s3cr3t-shown-once"}, nil)
	body := f.lastBody(t, "POST", "/oidc/admin/clients")
	if _, ok := body["secret"]; ok {
		t.Errorf("request carries a secret: %v", body)
	}
	if body["id"] != "mini-program" || body["confidential"] != true || len(body["grantTypes"].([]any)) != 2 {
		t.Errorf("request %v", body)
	}
	// Listing and showing it again never shows a secret.
	for _, args := range [][]string{{"clients", "list"}, {"clients", "get", "mini-program"}, {"clients", "list", "-o", "json"}} {
		if r := run(t, nil, f.env(), args...); strings.Contains(r.stdout, "s3cr3t") {
			t.Errorf("%v shows the secret", args)
		}
	}
	// A public client gets no secret line.
	r = run(t, nil, f.env(), "clients", "create", "kiosk-shell", "--app-type", "native", "--kiosk-only", "--first-party", "-o", "json")
	r.want(t, ExitOK, []string{`"kioskOnly": true`}, nil)
	if strings.Contains(r.stdout, "secret") {
		t.Errorf("public client output mentions a secret")
	}
}

func TestClientsCreateRefusedWithTheAPIMessage(t *testing.T) {
	f := newFakeProvider(t)
	r := run(t, nil, f.env(), "clients", "create", "bad", "--redirect-uri", "https://*.example.gov.cn/cb")
	r.want(t, ExitError, nil, []string{`bad_request (HTTP 400): redirect URI "https://*.example.gov.cn/cb": must be absolute, without fragment or wildcard`})
	run(t, nil, f.env(), "clients", "create", "web-portal").want(t, ExitError, nil, []string{"conflict (HTTP 409): client exists"})
}

func TestClientsDelete(t *testing.T) {
	f := newFakeProvider(t)
	run(t, nil, f.env(), "clients", "delete", "web-portal").want(t, ExitOK, []string{"Deleted client web-portal"}, nil)
	run(t, nil, f.env(), "clients", "delete", "web-portal").want(t, ExitNotFound, nil, []string{"no such client"})
	if r := run(t, nil, f.env(), "clients", "delete", "fleetctl", "-o", "json"); r.code != ExitOK || r.stdout != "{\n  \"id\": \"fleetctl\",\n  \"deleted\": true\n}\n" {
		t.Errorf("json delete: %d %q", r.code, r.stdout)
	}
}

func TestAdminAPIAuthErrors(t *testing.T) {
	f := newFakeProvider(t)
	run(t, nil, f.env("KF_TOKEN", fieldopsToken), "clients", "list").want(t, ExitUnauthorized, nil, []string{"forbidden (HTTP 403): role admin required"})
	run(t, nil, f.env("KF_TOKEN", "kfa_bootstrap"), "staff", "update", "admin", "--roles", "admin").
		want(t, ExitUnauthorized, nil, []string{"unauthorized (HTTP 401): missing, unknown, revoked or expired access token"})
	run(t, nil, f.env("KF_TOKEN", ""), "clients", "list").want(t, ExitUnauthorized, nil, []string{"no token given"})
}

func TestStaffCreate(t *testing.T) {
	f := newFakeProvider(t)
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, nil, f.env(), "staff", "create", "fieldops1", "--name", "Li Wei", "--roles", "fieldops,reviewer", "--password-file", pw)
	r.want(t, ExitOK, []string{"USERNAME", "u_fieldops1", "Li Wei", "fieldops,reviewer"}, nil)
	if strings.Contains(r.stdout+r.stderr, "horse") {
		t.Error("the password was printed")
	}
	body := f.lastBody(t, "POST", "/oidc/admin/staff")
	if body["password"] != "correct horse battery" || body["username"] != "fieldops1" || len(body["roles"].([]any)) != 2 {
		t.Errorf("request %v", body)
	}

	// From stdin, JSON out.
	r = run(t, nil, f.env("<stdin>", "another-password\r\n"), "staff", "create", "dev1", "--roles", "developer", "--password-file", "-", "-o", "json")
	r.want(t, ExitOK, []string{`"username": "dev1"`, `"roles": [`}, nil)
	if body := f.lastBody(t, "POST", "/oidc/admin/staff"); body["password"] != "another-password" {
		t.Errorf("stdin password %q", body["password"])
	}

	// The API's refusals, and usage errors all at once.
	run(t, nil, f.env(), "staff", "create", "fieldops1", "--roles", "fieldops", "--password-file", pw).
		want(t, ExitError, nil, []string{"conflict (HTTP 409): username taken"})
	run(t, nil, f.env(), "staff", "create", "x", "--roles", "root", "--password-file", pw).
		want(t, ExitError, nil, []string{`unknown staff role "root"`})
	run(t, nil, f.env(), "staff", "create", "nanshan1", "--roles", "fieldops", "--region", "440305", "--password-file", pw).
		want(t, ExitOK, []string{"440305"}, nil)
	if body := f.lastBody(t, "POST", "/oidc/admin/staff"); fmt.Sprint(body["regions"]) != "[440305]" {
		t.Errorf("request %v", body)
	}
	r = run(t, nil, f.env(), "staff", "create", "x")
	r.want(t, ExitUsage, nil, []string{"--password-file is required", "--roles is required"})
	run(t, nil, f.env(), "staff", "create", "x", "--roles", "fieldops", "--password-file", filepath.Join(t.TempDir(), "none")).
		want(t, ExitUsage, nil, []string{"--password-file"})
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.requests); n != 5 {
		t.Errorf("%d requests, want 5 (usage errors send none)", n)
	}
}

func TestStaffUpdate(t *testing.T) {
	f := newFakeProvider(t)
	r := run(t, nil, f.env(), "staff", "update", "admin", "--roles", "admin,fieldops")
	r.want(t, ExitOK, []string{"admin,fieldops", "roles set; failed logins cleared (the account is unlocked)"}, nil)
	body := f.lastBody(t, "PUT", "/oidc/admin/staff/admin")
	if _, ok := body["password"]; ok || len(body["roles"].([]any)) != 2 {
		t.Errorf("request %v", body)
	}

	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("new-password-9"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, nil, f.env(), "staff", "update", "admin", "--roles", "admin", "--password-file", pw).
		want(t, ExitOK, []string{"roles and password set"}, nil)
	if body := f.lastBody(t, "PUT", "/oidc/admin/staff/admin"); body["password"] != "new-password-9" {
		t.Errorf("request %v", body)
	}

	// --roles '' sends an empty list, not null.
	run(t, nil, f.env(), "staff", "update", "admin", "--roles", "", "-o", "json").want(t, ExitOK, []string{`"roles": []`}, nil)
	if body := f.lastBody(t, "PUT", "/oidc/admin/staff/admin"); body["roles"] == nil {
		t.Errorf("roles sent as null: %v", body)
	}

	// A region scope set, kept by an update without --region, cleared with --region ''.
	run(t, nil, f.env(), "staff", "update", "admin", "--roles", "admin", "--region", "440305,4401").
		want(t, ExitOK, []string{"REGIONS", "440305,4401"}, nil)
	run(t, nil, f.env(), "staff", "update", "admin", "--roles", "admin,fieldops").want(t, ExitOK, []string{"440305,4401"}, nil)
	if body := f.lastBody(t, "PUT", "/oidc/admin/staff/admin"); fmt.Sprint(body["regions"]) != "[440305 4401]" {
		t.Errorf("scope not kept: %v", body)
	}
	run(t, nil, f.env(), "staff", "list").want(t, ExitOK, []string{"440305,4401"}, nil)
	run(t, nil, f.env(), "staff", "update", "admin", "--roles", "admin", "--region", "").want(t, ExitOK, []string{" all"}, nil)
	run(t, nil, f.env(), "staff", "update", "admin", "--roles", "admin", "--region", "4403051,x").
		want(t, ExitUsage, nil, []string{`--region: region scope "4403051", "x": want GB/T 2260 prefixes`})

	run(t, nil, f.env(), "staff", "update", "admin").want(t, ExitUsage, nil, []string{"--roles is required"})
	run(t, nil, f.env(), "staff", "update", "ghost", "--roles", "fieldops").want(t, ExitNotFound, nil, []string{"no such staff account"})
	run(t, nil, f.env(), "staff").want(t, ExitUsage, nil, []string{"needs a subcommand: create, list, update"})
	run(t, nil, f.env(), "clients", "update", "x").want(t, ExitUsage, nil, []string{`unknown command "update"`})
}
