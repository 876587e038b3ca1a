package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

	"github.com/kioskfleet/kioskfleet/hub/bulk"
	"github.com/kioskfleet/kioskfleet/hub/ca"
	"github.com/kioskfleet/kioskfleet/hub/ca/catest"
	"github.com/kioskfleet/kioskfleet/hub/catalog"
	"github.com/kioskfleet/kioskfleet/hub/feed"
	"github.com/kioskfleet/kioskfleet/hub/httpapi"
	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/hub/logtail"
	"github.com/kioskfleet/kioskfleet/hub/security"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
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
	countyTok   = "county-token"       // fieldops in Nanshan (440305) only
	countyAdmin = "county-admin-token" // admin in Nanshan only
	devTok      = "dev-tax-token"      // developer of department tax
	devHRTok    = "dev-hr-token"       // developer of department hr
	revTok      = "rev-token"          // reviewer only
	opTok       = "op-token"           // operator only
	wait        = 10 * time.Second
)

// tokens authenticates fixed bearer tokens.
type tokens map[string]httpapi.Principal

// The audiences of test tokens: issued for the fleet API, for the citizens' API.
var (
	fleetAPI   = []string{httpapi.AudienceFleet}
	citizenAPI = []string{httpapi.AudienceCitizen}
)

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
	cat      *catalog.Catalog
	ca       *ca.CA
	sess     *sessions
	disp     *dispatch
	clock    *clock
	srv      *httptest.Server
	feed     *feed.Feed
	bulk     *bulk.Engine
	logs     *logtail.Room
	sec      *security.Recorder // what the API counts, written when a test flushes it
	inflight atomic.Int64       // requests inside the API handler
	kiosks   kioskVerifier
}

// kioskVerifier verifies kiosk assertions with the OpenID Provider a test starts on the env's
// store (kioskIdentity); none before.
type kioskVerifier struct {
	p atomic.Pointer[identity.Provider]
}

func (k *kioskVerifier) VerifyKiosk(ctx context.Context, assertion string) (string, error) {
	p := k.p.Load()
	if p == nil {
		return "", errors.New("no identity provider in this test")
	}
	return p.VerifyKiosk(ctx, assertion)
}

// kioskIdentity starts the hub's OpenID Provider on the env's store: kiosks it enrolls
// (EnrollKiosk) authenticate to the API with their device keys.
func (e *env) kioskIdentity(t testing.TB) *identitytest.Env {
	idp := identitytest.NewOn(t, e.st)
	e.kiosks.p.Store(idp.P)
	return idp
}

// newEnv starts the API on an httptest server, adjusted by adjust before it starts.
func newEnv(t testing.TB, adjust ...func(*http.Server)) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{st: st, ca: catest.New(t), sess: &sessions{connected: map[string]bool{}}, clock: &clock{}, feed: feed.New(0, nil)}
	e.clock.ns.Store(time.Now().UTC().Truncate(time.Millisecond).UnixNano())
	e.disp = &dispatch{st: st, sess: e.sess, now: e.clock.Now}
	cat, err := catalog.New(catalog.Config{Store: st, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.cat = cat
	e.logs = logtail.New(logtail.Config{Now: e.clock.Now, Notify: e.feed.Publish})
	if e.bulk, err = bulk.New(bulk.Config{Store: st, Sessions: e.sess, Dispatch: e.disp, Notify: e.feed.Publish, Now: e.clock.Now}); err != nil {
		t.Fatal(err)
	}
	e.sec = security.New(security.Config{Store: st, Now: e.clock.Now})
	h := httpapi.New(httpapi.Config{
		Security: e.sec,
		Store:    st, CA: e.ca, Sessions: e.sess, Dispatch: e.disp, Catalog: cat, Bulk: e.bulk,
		Auth: httpapi.AnyOf{httpapi.NewBootstrapToken(adminTok), tokens{
			opsTok:      {Subject: "ops1", Roles: []string{"reviewer", "fieldops"}, Audience: fleetAPI},
			reviewerTok: {Subject: "rev1", Roles: []string{"reviewer", "developer"}, Audience: fleetAPI},
			countyTok:   {Subject: "eng1", Username: "nanshan-eng", Roles: []string{"fieldops"}, Regions: []string{"440305"}, Audience: fleetAPI},
			countyAdmin: {Subject: "adm2", Roles: []string{"admin"}, Regions: []string{"440305"}, Audience: fleetAPI},
			devTok:      {Subject: "dev1", Roles: []string{"developer"}, Department: "tax", Audience: fleetAPI},
			devHRTok:    {Subject: "dev2", Roles: []string{"developer"}, Department: "hr", Audience: fleetAPI},
			revTok:      {Subject: "rev2", Roles: []string{"reviewer"}, Audience: fleetAPI},
			opTok:       {Subject: "op1", Roles: []string{"operator"}, Audience: fleetAPI},
		}, httpapi.KioskAssertions{Verifier: &e.kiosks}},
		MQTTAddr: "hub.kiosk.test:8883", Version: "0.1.0-test", Now: e.clock.Now, Feed: e.feed, FeedHold: 5 * time.Second, Logs: e.logs,
	})
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.inflight.Add(1)
		defer e.inflight.Add(-1)
		h.ServeHTTP(w, r)
	}))
	for _, f := range adjust {
		f(e.srv.Config)
	}
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	t.Cleanup(e.feed.Close) // first: event streams end, so that the server can close
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
		// Attack 5: invalid UTF-8 was stored as replacement characters; a duplicate key said two things.
		{"invalid UTF-8", "POST", p + "/sites", adminTok, "{\"id\":\"sz-x\",\"name\":\"\xe7\xa6\",\"region\":\"440304\"}", 400, "bad_request", nil, "invalid UTF-8 at byte 21"},
		{"lone surrogate", "POST", p + "/sites", adminTok, `{"id":"sz-x","name":"\ud800","region":"440304"}`, 400, "bad_request", nil, "escaped lone surrogate"},
		{"duplicate key", "POST", p + "/sites", adminTok, `{"id":"sz-x","name":"X","region":"440304","id":"sz-y"}`, 400, "bad_request", nil, `duplicate key at byte 42: "id"`},
		{"duplicate key, other case", "POST", p + "/sites", adminTok, `{"id":"sz-x","name":"X","Name":"Y","region":"440304"}`, 400, "bad_request", nil, "differ only in case"},
		{"enroll: invalid UTF-8", "POST", p + "/enroll", "", "{\"token\":\"kfe_\xff\",\"csr\":\"x\"}", 400, "bad_request", nil, "invalid UTF-8"},
		{"desired: duplicate deep", "PUT", p + "/devices/k-1/desired", opsTok, `{"doc":{"a":{"b":1,"b":2}}}`, 400, "bad_request", nil, "duplicate key"},

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
				if wa := res.Header.Get("WWW-Authenticate"); (a.status == 401) != strings.HasPrefix(wa, `Bearer realm="kioskfleet"`) {
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
