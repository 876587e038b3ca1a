package httpapi_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/hub/ca"
	"github.com/kioskfleet/kioskfleet/hub/ca/catest"
	"github.com/kioskfleet/kioskfleet/hub/httpapi"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	adminTok    = "kfa_admin-secret"
	opsTok      = "ops-token"
	reviewerTok = "reviewer-token"
	wait        = 10 * time.Second
)

// tokens authenticates fixed bearer tokens.
type tokens map[string]httpapi.Principal

func (ts tokens) Authenticate(r *http.Request) (httpapi.Principal, error) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		if p, ok := ts[h[7:]]; ok {
			return p, nil
		}
	}
	return httpapi.Principal{}, httpapi.ErrUnauthenticated
}

// sessions is a fake broker: which devices are connected, and which were disconnected.
type sessions struct {
	mu           sync.Mutex
	connected    map[string]bool
	disconnected []string
}

var _ httpapi.Sessions = (*sessions)(nil)

func (s *sessions) Disconnect(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disconnected = append(s.disconnected, id)
	delete(s.connected, id)
}

func (s *sessions) Connected(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected[id]
}

// dispatch records the dispatcher calls; a connected device gets its commands marked delivered,
// as the ingest does.
type dispatch struct {
	st      store.Store
	sess    *sessions
	now     func() time.Time
	mu      sync.Mutex
	pending []string
	desired []string
}

var _ httpapi.Dispatcher = (*dispatch)(nil)

func (d *dispatch) SendPending(ctx context.Context, id string) {
	d.mu.Lock()
	d.pending = append(d.pending, id)
	d.mu.Unlock()
	if !d.sess.Connected(id) {
		return
	}
	cs, err := d.st.PendingCommands(ctx, id, d.now())
	if err != nil {
		panic(err)
	}
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	if err := d.st.MarkDelivered(ctx, ids, d.now()); err != nil {
		panic(err)
	}
}

func (d *dispatch) PushDesired(_ context.Context, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.desired = append(d.desired, id)
}

func (d *dispatch) calls() (pending, desired []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.pending), slices.Clone(d.desired)
}

type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

type env struct {
	st       *sqlite.Store
	ca       *ca.CA
	sess     *sessions
	disp     *dispatch
	clock    *clock
	srv      *httptest.Server
	inflight atomic.Int64 // requests inside the API handler
}

func newEnv(t testing.TB) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{st: st, ca: catest.New(t), sess: &sessions{connected: map[string]bool{}}, clock: &clock{}}
	e.clock.ns.Store(time.Now().UTC().Truncate(time.Millisecond).UnixNano())
	e.disp = &dispatch{st: st, sess: e.sess, now: e.clock.Now}
	h := httpapi.New(httpapi.Config{
		Store: st, CA: e.ca, Sessions: e.sess, Dispatch: e.disp,
		Auth: httpapi.AnyOf{httpapi.NewBootstrapToken(adminTok), tokens{
			opsTok:      {Subject: "ops1", Roles: []string{"reviewer", "fieldops"}},
			reviewerTok: {Subject: "rev1", Roles: []string{"reviewer", "developer"}},
		}},
		MQTTAddr: "127.0.0.1:8883", Version: "0.1.0-test", Now: e.clock.Now,
	})
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.inflight.Add(1)
		defer e.inflight.Add(-1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) err(t testing.TB) api.Error {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(r.body, &eb); err != nil || eb.Error.Code == "" {
		t.Fatalf("status %d: body %q is not an api.ErrorBody", r.status, r.body)
	}
	return eb.Error
}

func (e *env) raw(t testing.TB, ctx context.Context, method, path, token string, body io.Reader) resp {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: content type %q", method, path, ct)
	}
	return resp{res.StatusCode, res.Header, b}
}

// do sends body (a string is sent as is, anything else JSON-encoded) and decodes a 2xx answer
// into out.
func (e *env) do(t testing.TB, method, path, token string, body any, wantStatus int, out any) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		rd = bytes.NewReader(wire.Encode(b))
	}
	r := e.raw(t, t.Context(), method, path, token, rd)
	if r.status != wantStatus {
		t.Fatalf("%s %s: status %d (%s), want %d", method, path, r.status, r.body, wantStatus)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, r.body)
		}
	}
	return r
}

const p = api.Prefix

func (e *env) site(t testing.TB, id string) fleet.Site {
	t.Helper()
	var s fleet.Site
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: id, Name: "Hall " + id, Region: "440304", Address: "Fuzhong 3rd Road 8"}, 201, &s)
	return s
}

func (e *env) token(t testing.TB, site, ttl string) api.Token {
	t.Helper()
	var tok api.Token
	e.do(t, "POST", p+"/enrollment-tokens", opsTok, api.CreateToken{SiteID: site, TTL: ttl}, 201, &tok)
	return tok
}

func (e *env) enroll(t testing.TB, site string) api.Enrolled {
	t.Helper()
	csr, _ := catest.NewCSR(t, "ignored")
	var en api.Enrolled
	e.do(t, "POST", p+"/enroll", "", api.Enroll{Token: e.token(t, site, "").Secret, CSR: string(csr), Model: "KF-K200"}, 201, &en)
	return en
}

func TestSitesAndHealth(t *testing.T) {
	e := newEnv(t)
	var h api.Health
	e.do(t, "GET", p+"/health", opsTok, nil, 200, &h)
	if h != (api.Health{Status: "ok", Version: "0.1.0-test", Store: "ok", Broker: "127.0.0.1:8883"}) {
		t.Fatalf("health %+v", h)
	}
	var sites api.Sites
	e.do(t, "GET", p+"/sites", opsTok, nil, 200, &sites)
	if sites.Sites == nil || len(sites.Sites) != 0 {
		t.Fatalf("no sites: %+v, want an empty list", sites)
	}
	if !strings.Contains(string(e.do(t, "GET", p+"/sites", opsTok, nil, 200, nil).body), `"sites":[]`) {
		t.Fatal("empty list not encoded as []")
	}
	b := e.site(t, "sz-b")
	a := e.site(t, "sz-a")
	if a != (fleet.Site{ID: "sz-a", Name: "Hall sz-a", Region: "440304", Address: "Fuzhong 3rd Road 8"}) {
		t.Fatalf("created %+v", a)
	}
	e.do(t, "GET", p+"/sites", opsTok, nil, 200, &sites)
	if !slices.Equal(sites.Sites, []fleet.Site{a, b}) {
		t.Fatalf("sites %+v, want by id", sites.Sites)
	}
	if er := e.do(t, "POST", p+"/sites", adminTok, a, 409, nil).err(t); er.Code != "conflict" {
		t.Fatalf("duplicate site: %+v", er)
	}

	d1, d2 := e.enroll(t, "sz-a"), e.enroll(t, "sz-b")
	e.sess.connected[d2.DeviceID] = true
	e.do(t, "GET", p+"/health", adminTok, nil, 200, &h)
	if h.Devices != 2 || h.ConnectedCount != 1 || h.Status != "ok" {
		t.Fatalf("health %+v with %s, %s (one connected)", h, d1.DeviceID, d2.DeviceID)
	}

	// A store that does not answer makes the hub degraded, not silent.
	e.st.Close()
	e.do(t, "GET", p+"/health", adminTok, nil, 200, &h)
	if h.Status != "degraded" || h.Store == "ok" {
		t.Fatalf("health with a closed store: %+v", h)
	}
}

func TestEnrollment(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-futian-1")
	tok := e.token(t, "sz-futian-1", "2h")
	if !strings.HasPrefix(tok.Secret, "kfe_") || tok.SiteID != "sz-futian-1" || !tok.ExpiresAt.Equal(e.clock.Now().Add(2*time.Hour)) {
		t.Fatalf("token %+v", tok)
	}
	if def := e.token(t, "sz-futian-1", ""); !def.ExpiresAt.Equal(e.clock.Now().Add(24 * time.Hour)) {
		t.Fatalf("default ttl: expires %v", def.ExpiresAt)
	}
	if longest := e.token(t, "sz-futian-1", "720h"); !longest.ExpiresAt.Equal(e.clock.Now().Add(720 * time.Hour)) {
		t.Fatalf("ttl 720h: expires %v", longest.ExpiresAt)
	}

	csr, _ := catest.NewCSR(t, "k-chosen-by-kiosk")
	badCSR := "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
	// A bad CSR does not burn the token.
	r := e.do(t, "POST", p+"/enroll", "", api.Enroll{Token: tok.Secret, CSR: badCSR}, 400, nil)
	if er := r.err(t); er.Code != "bad_request" || !strings.HasPrefix(er.Message, "csr: ") {
		t.Fatalf("bad csr: %+v", er)
	}
	var en api.Enrolled
	e.do(t, "POST", p+"/enroll", "", api.Enroll{Token: tok.Secret, CSR: string(csr), Model: "KF-K200"}, 201, &en)
	if !wire.ValidDeviceID(en.DeviceID) || en.MQTTAddr != "127.0.0.1:8883" || en.CACertificate != string(e.ca.CertPEM()) {
		t.Fatalf("enrolled %+v", en)
	}
	blk, _ := pem.Decode([]byte(en.Certificate))
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != en.DeviceID || !cert.NotAfter.Equal(en.NotAfter) {
		t.Fatalf("certificate for %q until %v, want %q until %v", cert.Subject.CommonName, cert.NotAfter, en.DeviceID, en.NotAfter)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: e.ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("certificate does not verify as a client certificate of the CA: %v", err)
	}
	var d fleet.Device
	e.do(t, "GET", p+"/devices/"+en.DeviceID, opsTok, nil, 200, &struct {
		Device *fleet.Device `json:"device"`
	}{&d})
	if d.SiteID != "sz-futian-1" || d.Region != "440304" || d.Model != "KF-K200" || !d.EnrolledAt.Equal(e.clock.Now()) ||
		d.CertSerial == "" || !d.CertExpiry.Equal(en.NotAfter) {
		t.Fatalf("device %+v", d)
	}

	for _, tc := range []struct {
		name, token string
		status      int
		code, msg   string
	}{
		{"used token", tok.Secret, 410, "gone", "used"},
		{"unknown token", "kfe_nope", 401, "unauthorized", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csr, _ := catest.NewCSR(t, "x")
			er := e.do(t, "POST", p+"/enroll", "", api.Enroll{Token: tc.token, CSR: string(csr)}, tc.status, nil).err(t)
			if er.Code != tc.code || !strings.Contains(er.Message, tc.msg) {
				t.Fatalf("got %+v, want %s mentioning %q", er, tc.code, tc.msg)
			}
		})
	}
	t.Run("expired token", func(t *testing.T) {
		old := e.token(t, "sz-futian-1", "1h")
		e.clock.Add(time.Hour + time.Millisecond)
		csr, _ := catest.NewCSR(t, "x")
		er := e.do(t, "POST", p+"/enroll", "", api.Enroll{Token: old.Secret, CSR: string(csr)}, 410, nil).err(t)
		if er.Code != "gone" || !strings.Contains(er.Message, "expired") {
			t.Fatalf("got %+v", er)
		}
	})
}

// TestRefusals checks every refusal of every endpoint: status, code and the invalid fields.
func TestRefusals(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	dev := e.enroll(t, "sz-a").DeviceID
	revoked := e.enroll(t, "sz-a").DeviceID
	e.do(t, "POST", p+"/devices/"+revoked+"/revoke", opsTok, nil, 200, nil)
	csr, _ := catest.NewCSR(t, "x")
	huge := `{"id":"sz-x","name":"` + strings.Repeat("x", 1<<20) + `","region":"440304"}`

	type tc struct {
		name, method, path, token, body string
		status                          int
		code                            string
		fields                          []string // prefixes of the expected Fields, in order
		msg                             string   // a substring of the message
	}
	cases := []tc{
		// Requests.
		{"unknown endpoint", "GET", p + "/nope", opsTok, "", 404, "not_found", nil, "no such endpoint: GET /api/v1/nope"},
		{"method not served", "DELETE", p + "/sites", adminTok, "", 404, "not_found", nil, "no such endpoint"},
		{"invalid JSON", "POST", p + "/sites", adminTok, `{"id":`, 400, "bad_request", nil, "invalid JSON body"},
		{"empty body", "POST", p + "/sites", adminTok, ``, 400, "bad_request", nil, "empty"},
		{"not an object", "POST", p + "/sites", adminTok, `[1]`, 400, "bad_request", nil, "invalid JSON body"},
		{"unknown field", "POST", p + "/sites", adminTok, `{"id":"sz-x","name":"X","region":"440304","bogus":1}`, 400, "bad_request", nil, `unknown field "bogus"`},
		{"trailing data", "POST", p + "/sites", adminTok, `{"id":"sz-x","name":"X","region":"440304"} {"id":"sz-y"}`, 400, "bad_request", nil, "trailing data"},
		{"body over 1 MiB", "POST", p + "/sites", adminTok, huge, 400, "bad_request", nil, "over 1048576 bytes"},
		{"wrong type", "POST", p + "/sites", adminTok, `{"id":1}`, 400, "bad_request", nil, "invalid JSON body"},

		// Sites.
		{"site: all fields at once", "POST", p + "/sites", adminTok, `{"id":"-X","name":"  ","region":"4403"}`, 400, "bad_request",
			[]string{"id: ", "name: ", "region: "}, "invalid request: id: "},
		{"site: region letters", "POST", p + "/sites", adminTok, `{"id":"sz-x","name":"X","region":"44030a"}`, 400, "bad_request", []string{"region: "}, `"44030a"`},
		{"site: region seven digits", "POST", p + "/sites", adminTok, `{"id":"sz-x","name":"X","region":"4403041"}`, 400, "bad_request", []string{"region: "}, ""},
		{"site: region 000000", "POST", p + "/sites", adminTok, `{"id":"sz-x","name":"X","region":"000000"}`, 400, "bad_request", []string{"region: "}, ""},
		{"site: name too long", "POST", p + "/sites", adminTok, `{"id":"sz-x","name":"` + strings.Repeat("n", 201) + `","region":"440304"}`, 400, "bad_request", []string{"name: "}, ""},

		// Enrollment tokens.
		{"token: missing site and bad ttl", "POST", p + "/enrollment-tokens", opsTok, `{"ttl":"31d"}`, 400, "bad_request", []string{"siteId: ", "ttl: "}, ""},
		{"token: ttl over 30 days", "POST", p + "/enrollment-tokens", opsTok, `{"siteId":"sz-a","ttl":"721h"}`, 400, "bad_request", []string{"ttl: "}, "720h0m0s"},
		{"token: ttl zero", "POST", p + "/enrollment-tokens", opsTok, `{"siteId":"sz-a","ttl":"0s"}`, 400, "bad_request", []string{"ttl: "}, ""},
		{"token: ttl under 1s", "POST", p + "/enrollment-tokens", opsTok, `{"siteId":"sz-a","ttl":"500ms"}`, 400, "bad_request", []string{"ttl: "}, "between 1s and 720h0m0s"},
		{"token: ttl negative", "POST", p + "/enrollment-tokens", opsTok, `{"siteId":"sz-a","ttl":"-1h"}`, 400, "bad_request", []string{"ttl: "}, ""},
		{"token: unknown site", "POST", p + "/enrollment-tokens", opsTok, `{"siteId":"sz-nope"}`, 400, "bad_request", []string{"siteId: "}, `no site "sz-nope"`},

		// Enrollment.
		{"enroll: all fields at once", "POST", p + "/enroll", "", `{"token":"","csr":"hello","model":"` + strings.Repeat("m", 101) + `"}`, 400, "bad_request",
			[]string{"token: ", "csr: ", "model: "}, ""},
		{"enroll: csr of the wrong type", "POST", p + "/enroll", "", string(wire.Encode(api.Enroll{Token: "kfe_x", CSR: strings.ReplaceAll(string(csr), "CERTIFICATE REQUEST", "CERTIFICATE REQUEST X")})), 400, "bad_request", nil, "csr: "},

		// Devices.
		{"devices: bad status", "GET", p + "/devices?status=dead", opsTok, "", 400, "bad_request", []string{"status: "}, `"dead"`},
		{"devices: bad region", "GET", p + "/devices?region=44x", opsTok, "", 400, "bad_request", []string{"region: "}, ""},
		{"device: id too short", "GET", p + "/devices/ab", opsTok, "", 400, "bad_request", nil, `id: "ab" is not a device id`},
		{"device: upper case id", "GET", p + "/devices/K-ABC", opsTok, "", 400, "bad_request", nil, "not a device id"},
		{"device: id with a slash", "GET", p + "/devices/k-a%2Fb", opsTok, "", 400, "bad_request", nil, "not a device id"},
		{"device: leading dash", "GET", p + "/devices/-abc", opsTok, "", 400, "bad_request", nil, "not a device id"},
		{"device: revoke bad id", "POST", p + "/devices/A_B/revoke", opsTok, "", 400, "bad_request", nil, "not a device id"},

		// Commands.
		{"command: all fields at once", "POST", p + "/devices/" + dev + "/commands", opsTok, `{"name":"9bad","ttl":"169h"}`, 400, "bad_request",
			[]string{"name: ", "ttl: "}, ""},
		{"command: missing name", "POST", p + "/devices/" + dev + "/commands", opsTok, `{}`, 400, "bad_request", []string{"name: "}, ""},
		{"command: args over 32 KiB", "POST", p + "/devices/" + dev + "/commands", opsTok, `{"name":"reboot","args":"` + strings.Repeat("a", 32<<10) + `"}`, 400, "bad_request", []string{"args: "}, ""},
		{"command: revoked device", "POST", p + "/devices/" + revoked + "/commands", opsTok, `{"name":"reboot"}`, 400, "bad_request", []string{"device: "}, "revoked"},
		{"command: revoked device and bad ttl", "POST", p + "/devices/" + revoked + "/commands", opsTok, `{"name":"reboot","ttl":"1y"}`, 400, "bad_request", []string{"ttl: ", "device: "}, ""},
		{"commands: bad limit", "GET", p + "/devices/" + dev + "/commands?limit=0", opsTok, "", 400, "bad_request", []string{"limit: "}, ""},
		{"commands: limit over 1000", "GET", p + "/devices/" + dev + "/commands?limit=1001", opsTok, "", 400, "bad_request", []string{"limit: "}, ""},
		{"command: bad wait", "GET", p + "/commands/c-x?wait=forever", opsTok, "", 400, "bad_request", []string{"wait: "}, ""},
		{"command: wait over 60s", "GET", p + "/commands/c-x?wait=61s", opsTok, "", 400, "bad_request", []string{"wait: "}, ""},
		{"command: negative wait", "GET", p + "/commands/c-x?wait=-1s", opsTok, "", 400, "bad_request", []string{"wait: "}, ""},
		{"command: unknown", "GET", p + "/commands/c-nope", opsTok, "", 404, "not_found", nil, ""},

		// Desired state.
		{"desired: array", "PUT", p + "/devices/" + dev + "/desired", opsTok, `{"doc":[1]}`, 400, "bad_request", []string{"doc: "}, "doc: must be a JSON object"},
		{"desired: string", "PUT", p + "/devices/" + dev + "/desired", opsTok, `{"doc":"x"}`, 400, "bad_request", []string{"doc: "}, "doc: must be a JSON object"},
		{"desired: null", "PUT", p + "/devices/" + dev + "/desired", opsTok, `{"doc":null}`, 400, "bad_request", []string{"doc: "}, "doc: must be a JSON object"},
		{"desired: missing", "PUT", p + "/devices/" + dev + "/desired", opsTok, `{}`, 400, "bad_request", []string{"doc: "}, "doc: must be a JSON object"},
		{"desired: over 32 KiB", "PUT", p + "/devices/" + dev + "/desired", opsTok, `{"doc":{"a":"` + strings.Repeat("a", 32<<10) + `"}}`, 400, "bad_request", []string{"doc: "}, "doc: at most 32 KiB"},

		// Records.
		{"records: bad after", "GET", p + "/devices/" + dev + "/records?after=x&limit=5000", opsTok, "", 400, "bad_request", []string{"after: ", "limit: "}, ""},
		{"records: negative after", "GET", p + "/devices/" + dev + "/records?after=-1", opsTok, "", 400, "bad_request", []string{"after: "}, ""},
		{"records: after of no record", "GET", p + "/devices/" + dev + "/records?after=12345", opsTok, "", 400, "bad_request", []string{"after: "}, "not a record of device"},
	}
	// Every endpoint on an unknown device is 404.
	for _, ep := range []struct{ method, path, body string }{
		{"GET", "", ""}, {"POST", "/revoke", ""}, {"POST", "/commands", `{"name":"reboot"}`}, {"GET", "/commands", ""},
		{"PUT", "/desired", `{"doc":{}}`}, {"GET", "/state", ""}, {"GET", "/records", ""},
	} {
		cases = append(cases, tc{"unknown device: " + ep.method + ep.path, ep.method, p + "/devices/k-nope" + ep.path, opsTok, ep.body, 404, "not_found", nil, "k-nope"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			r := e.raw(t, t.Context(), c.method, c.path, c.token, body)
			if r.status != c.status {
				t.Fatalf("status %d (%s), want %d", r.status, r.body, c.status)
			}
			er := r.err(t)
			if er.Code != c.code || !strings.Contains(er.Message, c.msg) {
				t.Fatalf("error %+v, want code %s and a message with %q", er, c.code, c.msg)
			}
			if len(er.Fields) != len(c.fields) {
				t.Fatalf("fields %q, want %q...", er.Fields, c.fields)
			}
			for i, f := range c.fields {
				if !strings.HasPrefix(er.Fields[i], f) || !strings.Contains(er.Message, er.Fields[i]) {
					t.Fatalf("fields %q, want %q... each repeated in the message %q", er.Fields, c.fields, er.Message)
				}
			}
		})
	}
	// Refusals leave nothing behind.
	var sites api.Sites
	e.do(t, "GET", p+"/sites", opsTok, nil, 200, &sites)
	if len(sites.Sites) != 1 {
		t.Fatalf("sites after refusals: %+v", sites.Sites)
	}
	var cmds api.Commands
	e.do(t, "GET", p+"/devices/"+revoked+"/commands", opsTok, nil, 200, &cmds)
	if len(cmds.Commands) != 0 {
		t.Fatalf("command created for a revoked device: %+v", cmds.Commands)
	}
}

// TestAuth checks authentication and roles on every endpoint that needs them.
func TestAuth(t *testing.T) {
	e := newEnv(t)
	endpoints := []struct {
		method, path string
		adminOnly    bool
	}{
		{"GET", "/health", false}, {"GET", "/sites", false}, {"POST", "/sites", true}, {"POST", "/enrollment-tokens", false},
		{"GET", "/devices", false}, {"GET", "/devices/k-abc", false}, {"POST", "/devices/k-abc/revoke", false},
		{"POST", "/devices/k-abc/commands", false}, {"GET", "/devices/k-abc/commands", false}, {"GET", "/commands/c-abc", false},
		{"PUT", "/devices/k-abc/desired", false}, {"GET", "/devices/k-abc/state", false}, {"GET", "/devices/k-abc/records", false},
	}
	for _, ep := range endpoints {
		t.Run(ep.method+ep.path, func(t *testing.T) {
			for _, a := range []struct {
				name, header string
				status       int
				code         string
			}{
				{"no token", "", 401, "unauthorized"},
				{"wrong token", "Bearer nope", 401, "unauthorized"},
				{"empty bearer", "Bearer ", 401, "unauthorized"},
				{"basic scheme", "Basic " + adminTok, 401, "unauthorized"},
				{"no staff role", "Bearer " + reviewerTok, 403, "forbidden"},
			} {
				req, _ := http.NewRequestWithContext(t.Context(), ep.method, e.srv.URL+p+ep.path, strings.NewReader(`{}`))
				if a.header != "" {
					req.Header.Set("Authorization", a.header)
				}
				res, err := e.srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				r := resp{res.StatusCode, res.Header, b}
				if r.status != a.status || r.err(t).Code != a.code {
					t.Fatalf("%s: status %d %s, want %d %s", a.name, r.status, b, a.status, a.code)
				}
				if wa := res.Header.Get("WWW-Authenticate"); (a.status == 401) != (wa == `Bearer realm="kioskfleet"`) {
					t.Fatalf("%s: WWW-Authenticate %q", a.name, wa)
				}
			}
			// fieldops passes authorisation (whatever the handler then says) except on admin endpoints.
			r := e.raw(t, t.Context(), ep.method, p+ep.path, opsTok, strings.NewReader(`{}`))
			if ep.adminOnly != (r.status == 403) {
				t.Fatalf("fieldops: status %d %s", r.status, r.body)
			}
			if r.status == 401 {
				t.Fatalf("fieldops refused: %s", r.body)
			}
		})
	}
	t.Run("scheme is case-insensitive", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", e.srv.URL+p+"/sites", nil)
		req.Header.Set("Authorization", "bearer "+adminTok)
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
	})
}

func TestDevices(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "gz-b", Name: "B", Region: "440104"}, 201, nil)
	a1, a2, b1 := e.enroll(t, "sz-a").DeviceID, e.enroll(t, "sz-a").DeviceID, e.enroll(t, "gz-b").DeviceID
	if err := e.st.SetPresence(t.Context(), a2, true, "1.0.0", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	list := func(q string) []string {
		var ds api.Devices
		e.do(t, "GET", p+"/devices"+q, opsTok, nil, 200, &ds)
		ids := []string{}
		for _, d := range ds.Devices {
			ids = append(ids, d.ID)
		}
		return ids
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	for q, want := range map[string][]string{
		"":                             sorted(a1, a2, b1),
		"?site=sz-a":                   sorted(a1, a2),
		"?region=44":                   sorted(a1, a2, b1),
		"?region=4401":                 {b1},
		"?region=440304&status=online": {a2},
		"?status=offline":              sorted(a1, b1),
		"?site=sz-nope":                {},
	} {
		if got := list(q); !slices.Equal(got, want) {
			t.Errorf("devices%s = %v, want %v", q, got, want)
		}
	}

	// Revoke: disconnects the session, idempotent.
	var d fleet.Device
	e.sess.connected[a1] = true
	e.do(t, "POST", p+"/devices/"+a1+"/revoke", opsTok, nil, 200, &d)
	if !d.Revoked || !d.RevokedAt.Equal(e.clock.Now()) || d.ID != a1 {
		t.Fatalf("revoked device %+v", d)
	}
	if !slices.Equal(e.sess.disconnected, []string{a1}) {
		t.Fatalf("disconnected %v, want %s", e.sess.disconnected, a1)
	}
	at := d.RevokedAt
	e.clock.Add(time.Minute)
	e.do(t, "POST", p+"/devices/"+a1+"/revoke", opsTok, nil, 200, &d)
	if !d.Revoked || !d.RevokedAt.Equal(at) {
		t.Fatalf("second revoke: %+v, want the first time kept", d)
	}
}

func TestCommands(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	dev := e.enroll(t, "sz-a").DeviceID
	other := e.enroll(t, "sz-a").DeviceID

	var c fleet.Command
	e.do(t, "POST", p+"/devices/"+dev+"/commands", opsTok, api.CreateCommand{Name: "print-test-page", Args: json.RawMessage(`{"printer":"receipt0"}`)}, 202, &c)
	now := e.clock.Now()
	if c.State != wire.CmdQueued || c.DeviceID != dev || c.Name != "print-test-page" || string(c.Args) != `{"printer":"receipt0"}` ||
		!c.CreatedAt.Equal(now) || !c.ExpiresAt.Equal(now.Add(time.Hour)) || !strings.HasPrefix(c.ID, "c-") {
		t.Fatalf("created %+v", c)
	}
	if pending, _ := e.disp.calls(); !slices.Equal(pending, []string{dev}) {
		t.Fatalf("SendPending calls %v, want one for %s", pending, dev)
	}
	// A connected device has it at once: the answer says delivered.
	e.sess.connected[dev] = true
	var c2 fleet.Command
	e.do(t, "POST", p+"/devices/"+dev+"/commands", opsTok, api.CreateCommand{Name: "reboot", TTL: "168h"}, 202, &c2)
	if c2.State != wire.CmdDelivered || !c2.ExpiresAt.Equal(now.Add(168*time.Hour)) {
		t.Fatalf("command to a connected device: %+v", c2)
	}

	var got fleet.Command
	e.do(t, "GET", p+"/commands/"+c.ID, opsTok, nil, 200, &got)
	if got.ID != c.ID || got.State != wire.CmdDelivered {
		t.Fatalf("get %+v", got)
	}
	var cs api.Commands
	e.do(t, "GET", p+"/devices/"+dev+"/commands", opsTok, nil, 200, &cs)
	if len(cs.Commands) != 2 || cs.Commands[0].ID != c2.ID || cs.Commands[1].ID != c.ID {
		t.Fatalf("commands %+v, want newest first", cs.Commands)
	}
	e.do(t, "GET", p+"/devices/"+dev+"/commands?limit=1", opsTok, nil, 200, &cs)
	if len(cs.Commands) != 1 || cs.Commands[0].ID != c2.ID {
		t.Fatalf("limit=1: %+v", cs.Commands)
	}
	if r := e.do(t, "GET", p+"/devices/"+other+"/commands", opsTok, nil, 200, nil); !strings.Contains(string(r.body), `"commands":[]`) {
		t.Fatalf("no commands: %s", r.body)
	}
	var det api.DeviceDetail
	e.do(t, "GET", p+"/devices/"+dev, opsTok, nil, 200, &det)
	if len(det.Commands) != 2 || det.Desired != nil || det.Reported != nil || det.Drift {
		t.Fatalf("detail %+v", det)
	}
}

// result commits a cmd.result record for id as the device would send it.
func result(t *testing.T, st store.Store, dev string, seq uint64, res wire.CommandResult) {
	t.Helper()
	body := wire.Encode(res)
	if _, err := st.CommitBatches(context.Background(), []store.Batch{{DeviceID: dev, Epoch: "e1", RecvTS: time.Now(),
		Records: []store.IncomingRecord{{Record: wire.Record{Seq: seq, Kind: wire.KindCmdResult, Class: wire.Business, TS: 1, Body: body},
			Effect: store.Effect{Command: &res}}}}}); err != nil {
		t.Error(err)
	}
}

func TestCommandLongPoll(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	dev := e.enroll(t, "sz-a").DeviceID
	var c fleet.Command
	e.do(t, "POST", p+"/devices/"+dev+"/commands", opsTok, api.CreateCommand{Name: "reboot"}, 202, &c)

	t.Run("returns after wait when not terminal", func(t *testing.T) {
		start := time.Now()
		var got fleet.Command
		e.do(t, "GET", p+"/commands/"+c.ID+"?wait=300ms", opsTok, nil, 200, &got)
		if el := time.Since(start); el < 300*time.Millisecond || got.State != wire.CmdQueued {
			t.Fatalf("returned %s after %v, want queued after 300ms", got.State, el)
		}
	})
	t.Run("wait=0 returns at once", func(t *testing.T) {
		var got fleet.Command
		e.do(t, "GET", p+"/commands/"+c.ID+"?wait=0s", opsTok, nil, 200, &got)
		if got.State != wire.CmdQueued {
			t.Fatalf("state %s", got.State)
		}
	})
	t.Run("honours the request context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+p+"/commands/"+c.ID+"?wait=60s", nil)
			req.Header.Set("Authorization", "Bearer "+opsTok)
			res, err := e.srv.Client().Do(req)
			if err == nil {
				res.Body.Close()
			}
			errc <- err
		}()
		deadline := time.Now().Add(wait)
		for e.inflight.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("request never reached the handler")
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
		if err := <-errc; err == nil {
			t.Fatal("cancelled request succeeded")
		}
		for e.inflight.Load() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("handler still waiting after its request was cancelled")
			}
			time.Sleep(time.Millisecond)
		}
	})
	t.Run("returns as soon as terminal", func(t *testing.T) {
		start := time.Now()
		done := make(chan fleet.Command, 1)
		go func() {
			var got fleet.Command
			e.do(t, "GET", p+"/commands/"+c.ID+"?wait=60s", opsTok, nil, 200, &got)
			done <- got
		}()
		deadline := time.Now().Add(wait)
		for e.inflight.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("request never reached the handler")
			}
			time.Sleep(time.Millisecond)
		}
		result(t, e.st, dev, 1, wire.CommandResult{ID: c.ID, State: wire.CmdAccepted}) // not terminal: keeps waiting
		result(t, e.st, dev, 2, wire.CommandResult{ID: c.ID, State: wire.CmdSucceeded, Output: json.RawMessage(`{"ok":true}`)})
		select {
		case got := <-done:
			if got.State != wire.CmdSucceeded || string(got.Output) != `{"ok":true}` {
				t.Fatalf("long poll returned %+v", got)
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("long poll took %v", el)
			}
		case <-time.After(wait):
			t.Fatal("long poll did not return when the command became terminal")
		}
		// A terminal command is returned at once, whatever the wait.
		start = time.Now()
		e.do(t, "GET", p+"/commands/"+c.ID+"?wait=60s", opsTok, nil, 200, nil)
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("terminal command held for %v", el)
		}
	})
}

func TestDesiredAndState(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	dev := e.enroll(t, "sz-a").DeviceID
	var st api.State
	if r := e.do(t, "GET", p+"/devices/"+dev+"/state", opsTok, nil, 200, &st); string(bytes.TrimSpace(r.body)) != `{"drift":false}` {
		t.Fatalf("state without documents: %s", r.body)
	}
	var ds fleet.DocState
	e.do(t, "PUT", p+"/devices/"+dev+"/desired", opsTok, `{"doc":{"logLevel":"info"}}`, 200, &ds)
	if ds.Version != 1 || ds.DeviceID != dev || string(ds.Doc) != `{"logLevel":"info"}` || !ds.UpdatedAt.Equal(e.clock.Now()) {
		t.Fatalf("desired %+v", ds)
	}
	e.do(t, "PUT", p+"/devices/"+dev+"/desired", opsTok, `{"doc":{"logLevel":"debug"}}`, 200, &ds)
	if ds.Version != 2 {
		t.Fatalf("second desired version %d", ds.Version)
	}
	if _, desired := e.disp.calls(); !slices.Equal(desired, []string{dev, dev}) {
		t.Fatalf("PushDesired calls %v", desired)
	}
	e.do(t, "GET", p+"/devices/"+dev+"/state", opsTok, nil, 200, &st)
	if st.Desired == nil || st.Desired.Version != 2 || st.Reported != nil || !st.Drift {
		t.Fatalf("state %+v, want drift (nothing reported)", st)
	}
	report := func(seq uint64, rep wire.Reported) {
		if _, err := e.st.CommitBatches(t.Context(), []store.Batch{{DeviceID: dev, Epoch: "e1", RecvTS: e.clock.Now(),
			Records: []store.IncomingRecord{{Record: wire.Record{Seq: seq, Kind: wire.KindReported, Class: wire.Business, TS: 1,
				Body: wire.Encode(rep)}, Effect: store.Effect{Reported: &rep}}}}}); err != nil {
			t.Fatal(err)
		}
	}
	report(1, wire.Reported{Version: 2, Doc: json.RawMessage(`{"logLevel":"debug"}`), Error: "printer.profile unknown"})
	e.do(t, "GET", p+"/devices/"+dev+"/state", opsTok, nil, 200, &st)
	if st.Reported == nil || st.Reported.Version != 2 || !st.Drift {
		t.Fatalf("state %+v, want drift (reported an error)", st)
	}
	report(2, wire.Reported{Version: 2, Doc: json.RawMessage(`{"logLevel":"debug"}`)})
	var det api.DeviceDetail
	e.do(t, "GET", p+"/devices/"+dev, opsTok, nil, 200, &det)
	if det.Drift || det.Desired == nil || det.Reported == nil || det.Reported.Error != "" {
		t.Fatalf("detail %+v, want in sync", det)
	}
}

func TestRecordsPaging(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	dev, other := e.enroll(t, "sz-a").DeviceID, e.enroll(t, "sz-a").DeviceID
	var bs []store.Batch
	for i := range 5 {
		b := storetest.NewBatch(dev, "e1", uint64(i*50+1), 50, 100)
		for j := range b.Records {
			if j%10 == 0 {
				b.Records[j].Kind = wire.KindAlert
			}
		}
		bs = append(bs, b, storetest.NewBatch(other, "e1", uint64(i*10+1), 10, 100))
	}
	bs = append(bs, storetest.NewBatch(dev, "e2", 1, 5, 100)) // the kiosk's disk was replaced
	if _, err := e.st.CommitBatches(t.Context(), bs); err != nil {
		t.Fatal(err)
	}

	page := func(q string) api.Records {
		var rs api.Records
		e.do(t, "GET", p+"/devices/"+dev+"/records"+q, opsTok, nil, 200, &rs)
		return rs
	}
	var all []fleet.Record
	after := int64(0)
	for pages := 0; ; pages++ {
		rs := page(fmt.Sprintf("?after=%d&limit=100", after))
		all = append(all, rs.Records...)
		if len(rs.Records) > 0 && rs.Next != rs.Records[len(rs.Records)-1].ID {
			t.Fatalf("next %d, want the last id %d", rs.Next, rs.Records[len(rs.Records)-1].ID)
		}
		if len(rs.Records) < 100 {
			if rs.Next != after && len(rs.Records) == 0 {
				t.Fatalf("empty page: next %d, want after (%d)", rs.Next, after)
			}
			break
		}
		after = rs.Next
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if len(all) != 255 {
		t.Fatalf("paged %d records, want 255", len(all))
	}
	for i, r := range all {
		wantEpoch, wantSeq := "e1", uint64(i+1)
		if i >= 250 {
			wantEpoch, wantSeq = "e2", uint64(i-249)
		}
		if r.DeviceID != dev || r.Epoch != wantEpoch || r.Seq != wantSeq {
			t.Fatalf("record %d is %s/%s/%d, want %s/%d", i, r.DeviceID, r.Epoch, r.Seq, wantEpoch, wantSeq)
		}
	}
	last := page(fmt.Sprintf("?after=%d", all[len(all)-1].ID))
	if len(last.Records) != 0 || last.Next != all[len(all)-1].ID {
		t.Fatalf("after the end: %+v", last)
	}
	if r := e.do(t, "GET", p+"/devices/"+dev+"/records?after="+fmt.Sprint(all[len(all)-1].ID), opsTok, nil, 200, nil); !strings.Contains(string(r.body), `"records":[]`) {
		t.Fatalf("empty page %s", r.body)
	}
	alerts := page("?kind=alert&limit=1000")
	if len(alerts.Records) != 25 {
		t.Fatalf("%d alerts, want 25", len(alerts.Records))
	}
	if def := page(""); len(def.Records) != 100 {
		t.Fatalf("default page of %d records, want 100", len(def.Records))
	}
	// A record id of another device is not a cursor of this one.
	var ors api.Records
	e.do(t, "GET", p+"/devices/"+other+"/records?limit=1", opsTok, nil, 200, &ors)
	er := e.do(t, "GET", p+"/devices/"+dev+"/records?after="+fmt.Sprint(ors.Records[0].ID), opsTok, nil, 400, nil).err(t)
	if len(er.Fields) != 1 || !strings.HasPrefix(er.Fields[0], "after: ") {
		t.Fatalf("foreign cursor: %+v", er)
	}
}

// TestClient drives the happy path through pkg/api's client, as fleetctl does.
func TestClient(t *testing.T) {
	e := newEnv(t)
	c := &api.Client{BaseURL: e.srv.URL, Token: adminTok, HTTP: e.srv.Client()}
	ctx := t.Context()
	var site fleet.Site
	if err := c.Do(ctx, "POST", p+"/sites", fleet.Site{ID: "sz-a", Name: "A", Region: "440304"}, &site); err != nil {
		t.Fatal(err)
	}
	h, err := c.Health(ctx)
	if err != nil || h.Status != "ok" {
		t.Fatalf("health %+v, %v", h, err)
	}
	err = c.Do(ctx, "POST", p+"/sites", fleet.Site{ID: "sz-a", Name: "A", Region: "440304"}, nil)
	if ae, ok := err.(*api.Error); !ok || ae.Status != 409 || ae.Code != "conflict" {
		t.Fatalf("duplicate through the client: %v", err)
	}
}
