package shell_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/journal"
	"github.com/kioskfleet/kioskfleet/agent/kiosklogin"
	"github.com/kioskfleet/kioskfleet/agent/localapi"
	"github.com/kioskfleet/kioskfleet/agent/outbox"
	"github.com/kioskfleet/kioskfleet/agent/shell"
	"github.com/kioskfleet/kioskfleet/drivers/docscan"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// hub is the hub as far as the shell goes: it records revocations, answers device logins as a
// script says, and can be "unreachable".
type hub struct {
	mu      sync.Mutex
	down    bool
	revoked []string
	polls   int
	approve int // the poll that approves (0: never)
}

var errDown = errors.New("hub unreachable")

func (h *hub) StartDeviceLogin(context.Context) (shell.DeviceLogin, error) {
	return shell.DeviceLogin{DeviceCode: "dc", UserCode: "WDJB-MJHT", VerificationURI: "http://hub.test/oidc/device",
		VerificationURIComplete: "http://hub.test/oidc/device?user_code=WDJB-MJHT", ExpiresIn: 60, Interval: 1}, nil
}

func (h *hub) PollDeviceLogin(context.Context, string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.polls++
	if h.approve > 0 && h.polls >= h.approve {
		return "at-qr", nil
	}
	return "", shell.ErrPending
}

func (h *hub) Revoke(_ context.Context, tok string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		return errDown
	}
	h.revoked = append(h.revoked, tok)
	return nil
}

func (h *hub) Ping(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		return errDown
	}
	return nil
}

func (h *hub) setDown(d bool) { h.mu.Lock(); h.down = d; h.mu.Unlock() }

func (h *hub) revocations() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.revoked...)
}

type kiosk struct {
	s      *shell.Shell
	hub    *hub
	ob     *outbox.SQLite
	key    *ecdsa.PrivateKey
	dir    string
	srv    *httptest.Server
	c      *http.Client
	closed int
	idle   time.Duration
}

func newKiosk(t *testing.T, idle time.Duration, opts ...func(*shell.Config)) *kiosk {
	t.Helper()
	k := &kiosk{hub: &hub{}, dir: t.TempDir(), idle: idle}
	k.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var err error
	if k.ob, err = outbox.Open(context.Background(), filepath.Join(t.TempDir(), "outbox.db"), outbox.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.ob.Close() })
	j, err := journal.Open(context.Background(), k.ob, journal.Options{Key: k.key})
	if err != nil {
		t.Fatal(err)
	}
	cfg := shell.Config{Dir: k.dir, VoiceDir: t.TempDir(), Journal: j, Hub: k.hub, DeviceID: "k-1", Tick: 10 * time.Millisecond, Espeak: "no-such-espeak",
		Settings:       func() (time.Duration, string) { return k.idle, "/shell/?care=1" },
		EndConnections: func() int { k.closed++; return 1 }}
	for _, o := range opts {
		o(&cfg)
	}
	if k.s, err = shell.New(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); k.s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	k.srv = httptest.NewServer(k.s)
	t.Cleanup(k.srv.Close)
	jar, _ := cookiejar.New(nil)
	k.c = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return k
}

func (k *kiosk) do(t *testing.T, method, path string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, k.srv.URL+path, bytes.NewReader(body))
	req.Header.Set(shell.Header, "1")
	resp, err := k.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func (k *kiosk) state(t *testing.T) shell.State {
	t.Helper()
	_, b, _ := k.do(t, "GET", "/shell/api/state", nil)
	var st shell.State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return st
}

// journal returns the entries in the outbox.
func (k *kiosk) journal(t *testing.T) []wire.JournalEntry {
	t.Helper()
	recs, err := k.ob.Pending(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []wire.JournalEntry
	for _, r := range recs {
		e, err := wire.DecodeJournalEntry(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func login(t *testing.T, k *kiosk, token string) {
	t.Helper()
	a := k.s.Authenticator(localapi.AuthenticatorFunc(func(context.Context, wire.IDCard) (kiosklogin.Session, error) {
		return kiosklogin.Session{AccessToken: token, ExpiresIn: time.Minute}, nil
	}))
	if _, err := a.LoginIDCard(context.Background(), wire.IDCard{Number: []byte("11010519491231002X"), Name: "张三"}); err != nil {
		t.Fatal(err)
	}
}

// A card login begins a session; its spool and scans are files of the session; logout wipes:
// connections closed, files gone, the token revoked, the attestation journaled as a signed
// checkpoint after the login.
func TestLogoutWipes(t *testing.T) {
	k := newKiosk(t, time.Minute)
	login(t, k, "at-1")
	st := k.state(t)
	if st.Session == nil || st.Session.ACR != shell.ACRIDCard || !k.s.Active() {
		t.Fatalf("state after login: %+v", st)
	}
	code, pdf, h := k.do(t, "GET", "/shell/api/materials/form-residence-permit", nil)
	if code != 200 || !bytes.HasPrefix(pdf, []byte("%PDF-")) || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("material: %d %.40s", code, pdf)
	}
	if code, b, _ := k.do(t, "POST", "/shell/api/scans", []byte("%PDF-1.4 scanned")); code != 200 || !strings.Contains(string(b), `"attach":"unavailable"`) {
		t.Fatalf("scan: %d %s", code, b)
	}
	if code, _, _ := k.do(t, "POST", "/shell/api/scans", []byte("not a pdf")); code != 400 {
		t.Fatalf("a scan that is no PDF: %d", code)
	}
	code, b, _ := k.do(t, "POST", "/shell/api/session/end", nil)
	var end struct {
		Wiped       bool
		Attestation shell.Attestation
	}
	json.Unmarshal(b, &end)
	a := end.Attestation
	if code != 200 || !end.Wiped || a.Files != 2 || a.Tokens != 1 || a.Revoked != 1 || a.Connections != 1 || a.Reason != "logout" || a.ACR != "idcard" {
		t.Fatalf("logout: %d %s", code, b)
	}
	if ents, _ := os.ReadDir(k.dir); len(ents) != 0 {
		t.Fatalf("files left: %v", ents)
	}
	if r := k.hub.revocations(); len(r) != 1 || r[0] != "at-1" {
		t.Fatalf("revoked %v", r)
	}
	es := k.journal(t)
	if len(es) != 2 || es[0].Type != shell.TypeLogin || es[1].Type != shell.TypeWiped || es[1].Sig == "" ||
		es[1].Counts["files"] != 2 || es[1].Refs["files-sha256"] != a.FilesSHA256 || es[1].VerifyCheckpoint(&k.key.PublicKey) != nil {
		t.Fatalf("journal %+v", es)
	}
	for _, e := range es {
		if strings.Contains(string(wire.Encode(e)), "张三") || strings.Contains(string(wire.Encode(e)), "1101051949") {
			t.Fatalf("personal data in the journal: %s", wire.Encode(e))
		}
	}
	if code, _, _ := k.do(t, "GET", "/shell/api/materials", nil); code != 401 {
		t.Fatalf("materials after the wipe: %d", code)
	}
}

// Idle past the timeout: the session is wiped by the agent itself; WaitIdle returns.
func TestIdleWipe(t *testing.T) {
	k := newKiosk(t, 300*time.Millisecond)
	if code, _, _ := k.do(t, "POST", "/shell/api/session/guest", nil); code != 200 {
		t.Fatal(code)
	}
	st := k.state(t)
	if st.Session == nil || st.Session.WarnMs != 150 || st.IdleMs != 300 {
		t.Fatalf("state %+v", st.Session)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := k.s.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	st = k.state(t)
	if st.Session != nil || st.Wipes != 1 || st.LastWipe.Reason != "idle" || st.LastWipe.ACR != "guest" {
		t.Fatalf("after idle: %+v", st)
	}
}

// Activity keeps the session; a second citizen's login wipes the first's session without
// closing the connections (the login runs on one).
func TestActivityAndNewLogin(t *testing.T) {
	k := newKiosk(t, 400*time.Millisecond)
	login(t, k, "at-a")
	first := k.state(t).Session.ID
	for range 8 {
		time.Sleep(100 * time.Millisecond)
		k.do(t, "POST", "/shell/api/activity", nil)
	}
	if st := k.state(t); st.Session == nil || st.Session.ID != first {
		t.Fatalf("the session did not survive its activity: %+v", st)
	}
	login(t, k, "at-b")
	st := k.state(t)
	if st.Session == nil || st.Session.ID == first || st.LastWipe == nil || st.LastWipe.Reason != "new-login" || k.closed != 0 {
		t.Fatalf("second login: %+v, %d connections closed", st, k.closed)
	}
}

// With the hub unreachable: the state says what is unavailable; the wipe cannot revoke, and the
// revocation is retried once the hub is back.
func TestOfflineRevocationRetried(t *testing.T) {
	k := newKiosk(t, time.Minute)
	waitUntil(t, "the hub probed", func() bool { return k.state(t).Hub.Reachable })
	k.hub.setDown(true)
	waitUntil(t, "the hub unreachable", func() bool { return !k.state(t).Hub.Reachable })
	st := k.state(t)
	if strings.Join(st.Unavailable, ",") != "idcard-login,qr-login,cases,attach" {
		t.Fatalf("unavailable %v", st.Unavailable)
	}
	login(t, k, "at-off")
	a, _ := k.s.End(context.Background(), "logout")
	if a.Tokens != 1 || a.Revoked != 0 {
		t.Fatalf("attestation %+v", a)
	}
	k.hub.setDown(false)
	waitUntil(t, "the revocation retried", func() bool { return len(k.hub.revocations()) == 1 })
}

// A QR login: the code rendered as SVG, the hub polled until the phone approves.
func TestQRLogin(t *testing.T) {
	k := newKiosk(t, time.Minute)
	k.hub.approve = 2
	code, b, _ := k.do(t, "POST", "/shell/api/login/qr", nil)
	var q struct{ UserCode, SVG string }
	json.Unmarshal(b, &q)
	if code != 200 || q.UserCode != "WDJB-MJHT" || !strings.HasPrefix(q.SVG, `<svg`) {
		t.Fatalf("qr: %d %.200s", code, b)
	}
	waitUntil(t, "the QR login approved", func() bool { st := k.state(t); return st.Session != nil && st.Session.ACR == shell.ACRDevice })
	k.s.End(context.Background(), "logout")
	if r := k.hub.revocations(); len(r) != 1 || r[0] != "at-qr" {
		t.Fatalf("revoked %v", r)
	}
}

// binder is an authenticator that can bind: it records which login each card had.
type binder struct {
	mu    sync.Mutex
	calls []string // "login", or "bind <device code>"
}

func (b *binder) LoginIDCard(context.Context, wire.IDCard) (kiosklogin.Session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, "login")
	return kiosklogin.Session{AccessToken: "at-card", ExpiresIn: time.Minute}, nil
}

func (b *binder) BindIDCard(_ context.Context, _ wire.IDCard, code string) (kiosklogin.Session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, "bind "+code)
	return kiosklogin.Session{AccessToken: "at-bound", ExpiresIn: time.Minute}, nil
}

// A QR code for real-name binding: approved, it begins no session (its token is revoked) and
// waits for the card; the card's login carries its device code, once.
func TestQRBinding(t *testing.T) {
	k := newKiosk(t, time.Minute)
	k.hub.approve = 2
	if code, b, _ := k.do(t, "POST", "/shell/api/login/qr?purpose=bind", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("binding without a card binder: %d %s", code, b)
	}
	b := &binder{}
	a := k.s.Authenticator(b)
	if code, _, _ := k.do(t, "POST", "/shell/api/login/qr?purpose=steal", nil); code != http.StatusBadRequest {
		t.Errorf("unknown purpose: %d", code)
	}
	if code, b, _ := k.do(t, "POST", "/shell/api/login/qr?purpose=bind", nil); code != 200 {
		t.Fatalf("binding QR: %d %s", code, b)
	}
	waitUntil(t, "the binding approved", func() bool { return k.state(t).QR == shell.QRTapCard })
	if st := k.state(t); st.Session != nil {
		t.Fatalf("a session began at the binding's approval: %+v", st.Session)
	}
	if r := k.hub.revocations(); len(r) != 1 || r[0] != "at-qr" {
		t.Fatalf("the binding QR's token not revoked: %v", r)
	}
	card := wire.IDCard{Number: []byte("11010519491231002X"), Name: "张三"}
	if _, err := a.LoginIDCard(context.Background(), card); err != nil {
		t.Fatal(err)
	}
	if st := k.state(t); st.Session == nil || st.Session.ACR != shell.ACRIDCard || st.QR != "" {
		t.Fatalf("after the card: %+v", st)
	}
	if _, err := a.LoginIDCard(context.Background(), card); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if strings.Join(b.calls, ",") != "bind dc,login" {
		t.Errorf("logins %v, want the binding once, then a plain login", b.calls)
	}
}

// The shell's API only answers its own pages; the wipe page clears the origin; / goes home.
func TestGuardsAndPages(t *testing.T) {
	k := newKiosk(t, time.Minute)
	resp, err := http.Get(k.srv.URL + "/shell/api/state")
	if err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("API without the shell's header: %v %v", resp.StatusCode, err)
	}
	resp, err = k.c.Get(k.srv.URL + "/shell/wiped")
	if err != nil || resp.Header.Get("Clear-Site-Data") != `"cache", "cookies", "storage"` {
		t.Fatalf("wiped page: %v %v", resp.Header, err)
	}
	resp, _ = k.c.Get(k.srv.URL + "/")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/shell/?care=1" {
		t.Fatalf("/: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = k.c.Get(k.srv.URL + "/shell/")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "shell.js") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("/shell/: %d %s", resp.StatusCode, resp.Header)
	}
	if code, _, _ := k.do(t, "GET", "/shell/api/materials/..%2f..%2fetc", nil); code != 401 {
		t.Fatalf("material without a session: %d", code)
	}
	k.do(t, "POST", "/shell/api/session/guest", nil)
	if code, _, _ := k.do(t, "GET", "/shell/api/materials/NOPE", nil); code != 400 {
		t.Fatalf("bad material id: %d", code)
	}
}

// Voice prompts: rendered by espeak-ng when it is there, and served; without it, the state says why.
func TestVoice(t *testing.T) {
	k := newKiosk(t, time.Minute)
	waitUntil(t, "the voice's status", func() bool { return k.state(t).Voice.Reason != "rendering" })
	if v := k.state(t).Voice; v.Available || !strings.Contains(v.Reason, "not installed") {
		t.Fatalf("voice without espeak-ng: %+v", v)
	}
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Skip("espeak-ng not installed (Debian package espeak-ng): prompts not rendered")
	}
	vdir := t.TempDir()
	k = newKiosk(t, time.Minute, func(c *shell.Config) { c.VoiceDir, c.Espeak = vdir, "" })
	waitUntil(t, "the prompts rendered", func() bool { return k.state(t).Voice.Available })
	resp, err := k.c.Get(k.srv.URL + "/shell/voice/zh-CN/attract.wav")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte("RIFF")) || len(b) < 10000 {
		t.Fatalf("prompt: %d, %d bytes", resp.StatusCode, len(b))
	}
}

// fakeDevices prints and scans without hardware.
type fakeDevices struct{ localapi.Devices }

func (fakeDevices) PrintDocument(_ context.Context, id string, doc devices.Document, progress func(devices.JobProgress)) (devices.JobOutcome, error) {
	progress(devices.JobProgress{JobID: 7, State: "processing", Pages: 1, TotalPages: 1})
	return devices.JobOutcome{Device: id, State: devices.JobCompleted, JobID: 7, Millis: 5}, nil
}

func (fakeDevices) ScanDocument(context.Context, string, docscan.Options) ([]docscan.Page, error) {
	return []docscan.Page{{}, {}}, nil
}

// Prints and scans through the local API are journal entries of the session, with the
// material's ID and the document's digest.
func TestTransactionsJournaled(t *testing.T) {
	k := newKiosk(t, time.Minute)
	k.do(t, "POST", "/shell/api/session/guest", nil)
	_, pdf, _ := k.do(t, "GET", "/shell/api/materials/guide-social-security", nil)
	d := k.s.Devices(fakeDevices{})
	if _, err := d.PrintDocument(context.Background(), "a4", devices.Document{Data: pdf}, func(devices.JobProgress) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ScanDocument(context.Background(), "scan0", docscan.Options{}); err != nil {
		t.Fatal(err)
	}
	es := k.journal(t)
	if len(es) != 3 || es[1].Type != shell.TypePrint || es[1].Refs["document"] != "guide-social-security" ||
		es[1].Refs["outcome"] != "completed" || es[1].Counts["pages"] != 1 || es[2].Type != shell.TypeScan || es[2].Counts["pages"] != 2 ||
		es[1].Session != k.state(t).Session.ID {
		t.Fatalf("journal %+v", es)
	}
}

// What a crash left in the session folder is deleted before anyone uses the kiosk.
func TestLeftoversDeletedAtStart(t *testing.T) {
	var left string
	k := newKiosk(t, time.Minute, func(c *shell.Config) {
		left = filepath.Join(c.Dir, "session-crashed", "scans")
		os.MkdirAll(left, 0o700)
		os.WriteFile(filepath.Join(left, "scan-1.pdf"), []byte("%PDF-1.4 a citizen's document"), 0o600)
	})
	if ents, _ := os.ReadDir(k.dir); len(ents) != 0 {
		t.Fatalf("left after start: %v", ents)
	}
}

// longRun is a run of digits longer than the shell's IDs ever hold (an ID number has 18).
var longRun = regexp.MustCompile(`[0-9]{9,}`)

// sink records the shell's events.
type sink struct {
	mu  sync.Mutex
	evs []wire.Event
}

func (s *sink) Track(_ context.Context, e wire.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evs = append(s.evs, e)
	return nil
}

// A card login, the home screen and the logout are events of the citizen's session with her
// subject from the ID token (the hub turns it into her pseudonym), and IDs that never look like
// an ID number; a guest's carry the session as an install ID instead.
func TestShellEvents(t *testing.T) {
	sk := &sink{}
	k := newKiosk(t, time.Minute, func(c *shell.Config) { c.Events = sk })
	claims := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"c_alice","iss":"https://hub"}`))
	a := k.s.Authenticator(localapi.AuthenticatorFunc(func(context.Context, wire.IDCard) (kiosklogin.Session, error) {
		return kiosklogin.Session{AccessToken: "at-1", IDToken: "eyJhbGciOiJFUzI1NiJ9." + claims + ".sig", ExpiresIn: time.Minute}, nil
	}))
	if _, err := a.LoginIDCard(context.Background(), wire.IDCard{Number: []byte("11010519491231002X"), Name: "张三"}); err != nil {
		t.Fatal(err)
	}
	k.state(t)
	k.do(t, "GET", "/shell/api/services", nil)
	k.do(t, "POST", "/shell/api/session/end", nil)
	k.do(t, "POST", "/shell/api/session/guest", nil)
	k.do(t, "GET", "/shell/api/services", nil)
	sk.mu.Lock()
	defer sk.mu.Unlock()
	var got []string
	for _, e := range sk.evs {
		got = append(got, e.Type+":"+e.Subject)
		if longRun.MatchString(e.ID) || longRun.MatchString(e.Session) || longRun.MatchString(e.AnonymousID) {
			t.Fatalf("event %+v", e)
		}
	}
	if want := []string{"login:c_alice", "view:c_alice", "logout:c_alice", "view:"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if e := sk.evs[3]; e.AnonymousID == "" || e.AnonymousID != e.Session || e.Session == sk.evs[0].Session {
		t.Fatalf("guest event %+v", e)
	}
}

// recHub is the hub with recommendations (hub/outreach): it answers the token of one citizen.
type recHub struct {
	hub
	mu     sync.Mutex
	tokens []string
	out    bool // she opted out
}

func (h *recHub) OptOutRecommendations(_ context.Context, token string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if token != "at-60" {
		return errors.New("401")
	}
	h.out = true
	return nil
}

func (h *recHub) MyRecommendations(_ context.Context, token string) (api.Recommendations, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tokens = append(h.tokens, token)
	if token != "at-60" {
		return api.Recommendations{}, errors.New("401")
	}
	if h.out {
		return api.Recommendations{OptedOut: true}, nil
	}
	return api.Recommendations{Recommendations: []api.Recommendation{{Service: "senior.card", Kind: "life-event", Rule: "turning-60"}}}, nil
}

// The home screen's recommendations are the hub's for the citizen logged in, asked with her
// session's token; a guest gets none and the hub is not asked.
func TestShellRecommendations(t *testing.T) {
	rh := &recHub{}
	k := newKiosk(t, time.Minute, func(c *shell.Config) { c.Hub = rh })
	get := func() api.Recommendations {
		t.Helper()
		status, b, _ := k.do(t, "GET", "/shell/api/recommendations", nil)
		var out api.Recommendations
		if err := json.Unmarshal(b, &out); status != http.StatusOK || err != nil {
			t.Fatalf("recommendations: %d %s", status, b)
		}
		return out
	}
	k.do(t, "POST", "/shell/api/session/guest", nil)
	if got := get(); len(got.Recommendations) != 0 || len(rh.tokens) != 0 {
		t.Fatalf("a guest: %+v, hub asked with %v", got, rh.tokens)
	}
	k.do(t, "POST", "/shell/api/session/end", nil)
	login(t, k, "at-60")
	k.state(t)
	if got := get(); len(got.Recommendations) != 1 || got.Recommendations[0].Service != "senior.card" || !slices.Equal(rh.tokens, []string{"at-60"}) {
		t.Fatalf("her recommendations: %+v, hub asked with %v", got, rh.tokens)
	}
	// She opts out at the kiosk: recorded at the hub with her token, nothing offered after.
	if status, b, _ := k.do(t, "PUT", "/shell/api/recommendations/opt-out", nil); status != http.StatusOK || !strings.Contains(string(b), `"optedOut":true`) {
		t.Fatalf("opt-out: %d %s", status, b)
	}
	if got := get(); len(got.Recommendations) != 0 || !got.OptedOut || !rh.out {
		t.Fatalf("after the opt-out: %+v", got)
	}
	k.do(t, "POST", "/shell/api/session/end", nil)
	k.do(t, "POST", "/shell/api/session/guest", nil)
	if status, _, _ := k.do(t, "PUT", "/shell/api/recommendations/opt-out", nil); status != http.StatusNotFound {
		t.Errorf("a guest's opt-out: %d, want 404", status)
	}
}
