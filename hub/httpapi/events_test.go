package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/cases"
	"github.com/kioskfleet/kioskfleet/hub/events"
	"github.com/kioskfleet/kioskfleet/hub/httpapi"
	"github.com/kioskfleet/kioskfleet/hub/ingest"
	"github.com/kioskfleet/kioskfleet/hub/ingest/ingesttest"
	"github.com/kioskfleet/kioskfleet/hub/ratings"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// canary is the ID number of GB 11643's annex: it must never be stored.
const canary = "11010519491231002X"

// clients authenticates channel clients by a fixed table of secrets ("" for public ones).
type clients map[string]string

func (cs clients) AuthenticateClient(_ context.Context, id, secret string) (store.Client, error) {
	if s, ok := cs[id]; ok && s == secret {
		return store.Client{ID: id}, nil
	}
	return store.Client{}, httpapi.ErrUnauthenticated
}

// Tokens of the events tests: one citizen on three channels, a citizen at a kiosk, staff.
const (
	aliceWeb    = "alice-web"
	aliceMobile = "alice-mobile"
	aliceKiosk  = "alice-kiosk"
	revokedTok  = "at-revoked-kiosk"
	staffTok    = "staff-console"
	bobTok      = "bob-web"
	alice       = "c_alice" // her account ID, also her subject at the built-in (public-subject) clients
)

type evEnv struct {
	st      *sqlite.Store
	ev      *events.Events
	cases   *cases.Cases
	ratings *ratings.Ratings
	srv     *httptest.Server
	bus     *ingesttest.Bus
	path    string
	now     time.Time
}

// newEvEnv runs the event room (its committer unless hold) and the API on a fresh SQLite store,
// with ingest for the kiosks' records.
func newEvEnv(t testing.TB, hold bool, mod ...func(*events.Config, *httpapi.Config)) *evEnv {
	t.Helper()
	e := &evEnv{path: filepath.Join(t.TempDir(), "hub.db"), now: time.Now().UTC().Truncate(time.Millisecond)}
	st, err := sqlite.Open(context.Background(), e.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	storetest.Enroll(t, st, "hall", "kiosk-1")
	storetest.Enroll(t, st, "hall", "k-revoked")
	if err := st.RevokeDevice(context.Background(), "k-revoked", e.now); err != nil {
		t.Fatal(err)
	}
	ecfg := events.Config{Secret: bytes.Repeat([]byte{3}, 32), Now: func() time.Time { return e.now }}
	acfg := httpapi.Config{Store: st, Clients: clients{"web-portal": "web-secret", "mini-program": "", "dept": "dept-secret"},
		Auth: tokens{
			aliceWeb:    {Subject: alice, Roles: []string{"citizen"}, ClientID: "web-portal", Audience: citizenAPI},
			aliceMobile: {Subject: alice, Roles: []string{"citizen"}, ClientID: "mobile-app", Audience: citizenAPI},
			aliceKiosk:  {Subject: alice, Roles: []string{"citizen"}, ClientID: "kiosk-shell", KioskID: "kiosk-1", Audience: citizenAPI},
			revokedTok:  {Subject: alice, Roles: []string{"citizen"}, ClientID: "kiosk-shell", KioskID: "k-revoked", Audience: citizenAPI},
			staffTok:    {Subject: "ops1", Roles: []string{"fieldops"}, Audience: fleetAPI},
			bobTok:      {Subject: "c_bob", Roles: []string{"citizen"}, ClientID: "web-portal", Audience: citizenAPI},
		}}
	for i := range 12 {
		acfg.Auth.(tokens)[fmt.Sprint("cit-", i)] = httpapi.Principal{Subject: fmt.Sprint("c_", i), Roles: []string{"citizen"}, ClientID: "mobile-app", Audience: citizenAPI}
	}
	for _, m := range mod {
		m(&ecfg, &acfg)
	}
	if e.ev, err = events.New(ecfg, st, nil); err != nil {
		t.Fatal(err)
	}
	acfg.Events = e.ev
	if e.cases, err = cases.New(cases.Config{Secret: bytes.Repeat([]byte{4}, 32), Now: func() time.Time { return e.now }}, st, cases.NewLocal()); err != nil {
		t.Fatal(err)
	}
	acfg.Cases = e.cases
	e.ratings = ratings.New(ratings.Config{Now: func() time.Time { return e.now }}, st)
	acfg.Ratings = e.ratings
	acfg.Analytics = e.ev
	e.srv = httptest.NewServer(httpapi.New(acfg))
	ctx, cancel := context.WithCancel(context.Background())
	e.bus = ingesttest.NewBus()
	ing, err := ingest.New(ingest.Config{Hooks: map[string]ingest.RecordHook{wire.KindEvent: e.ev}}, st, e.bus, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ing.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { ing.Run(ctx) })
	if !hold {
		wg.Go(func() { e.ev.Run(ctx) })
	}
	t.Cleanup(func() {
		e.srv.Close()
		cancel()
		if hold {
			e.ev.Run(ctx) // returns at once: ctx is done
		}
		wg.Wait()
		e.st.Close()
	})
	return e
}

// event returns an event's JSON with fields changed by kv pairs.
func (e *evEnv) event(id string, kv ...any) json.RawMessage {
	m := map[string]any{"v": 1, "id": id, "type": "view", "ts": e.now.Add(-time.Second).UnixMilli(), "service": "hukou.transfer", "region": "440305"}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return b
}

// post posts a batch with the given Authorization header value.
func (e *evEnv) post(t *testing.T, auth, query string, evs ...json.RawMessage) (int, http.Header, api.EventsResult, api.Error) {
	t.Helper()
	body, _ := json.Marshal(api.EventBatch{Events: evs})
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+api.EventsPath+query, bytes.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out api.EventsResult
	var eb api.ErrorBody
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("body %s: %v", b, err)
		}
	} else if err := json.Unmarshal(b, &eb); err != nil {
		t.Fatalf("status %d: body %s", res.StatusCode, b)
	}
	return res.StatusCode, res.Header, out, eb.Error
}

// postHeld posts batch as Alice on the web while the committer is held, and returns once it
// waits in the queue; its status arrives on the channel when it is committed.
func (e *evEnv) postHeld(t *testing.T, batch []json.RawMessage) <-chan int {
	t.Helper()
	done := make(chan int, 1)
	go func() {
		status, _, _, _ := e.post(t, bearer(aliceWeb), "", batch...)
		done <- status
	}()
	deadline := time.Now().Add(wait)
	for e.ev.Queued() < len(batch) {
		if time.Now().After(deadline) {
			t.Fatal("batch not queued")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return done
}

func bearer(tok string) string { return "Bearer " + tok }

func basic(id, secret string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(id, secret)
	return r.Header.Get("Authorization")
}

func (e *evEnv) stored(t *testing.T) []store.Event {
	t.Helper()
	evs, err := e.st.ListEvents(t.Context(), store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestEventsBatch: a malformed event is refused with its fields, the rest of its batch stored;
// a resent event is counted once; a batch of only malformed events is a 400 naming every field.
func TestEventsBatch(t *testing.T) {
	e := newEvEnv(t, false)
	status, _, res, _ := e.post(t, bearer(aliceWeb), "",
		e.event("evt-0000001"),
		e.event("evt-0000002", "type", "teleport", "region", "99"),
		e.event("evt-0000003", "type", "search", "props", map[string]string{"query": "dog licence", "results": "0"}),
		json.RawMessage(`{"v":1,"id":"evt-0000004","bogus":true}`))
	if status != http.StatusOK || res.Accepted != 2 || res.Duplicates != 0 || len(res.Rejected) != 2 {
		t.Fatalf("status %d, %+v", status, res)
	}
	if r := res.Rejected[0]; r.Index != 1 || r.ID != "evt-0000002" || len(r.Fields) != 2 ||
		!strings.HasPrefix(r.Fields[0], "type:") || !strings.HasPrefix(r.Fields[1], "region:") {
		t.Errorf("rejected %+v", r)
	}
	if r := res.Rejected[1]; r.Index != 3 || !strings.Contains(r.Fields[0], `unknown field "bogus"`) {
		t.Errorf("rejected %+v", r)
	}
	_, _, res, _ = e.post(t, bearer(aliceWeb), "", e.event("evt-0000001"), e.event("evt-0000005"))
	if res.Accepted != 1 || res.Duplicates != 1 {
		t.Fatalf("resent: %+v", res)
	}
	if n := len(e.stored(t)); n != 3 {
		t.Fatalf("%d events stored, want 3", n)
	}
	status, _, _, ae := e.post(t, bearer(aliceWeb), "", e.event("evt-0000006", "v", 9), e.event("x"))
	if status != http.StatusBadRequest || len(ae.Fields) != 2 || !strings.HasPrefix(ae.Fields[0], "events[0].v:") ||
		!strings.HasPrefix(ae.Fields[1], "events[1].id:") {
		t.Fatalf("all refused: status %d, %+v", status, ae)
	}
	status, _, _, ae = e.post(t, bearer(aliceWeb), "", make([]json.RawMessage, events.MaxBatch+1)...)
	if status != http.StatusBadRequest {
		t.Fatalf("oversized batch: %d %+v", status, ae)
	}
}

// TestEventsAuth: unknown clients, wrong secrets, tokens of no channel and revoked kiosks are
// refused; a public client posts by its ID; clients other than the built-in ones name their
// channel, and never the kiosk.
func TestEventsAuth(t *testing.T) {
	e := newEvEnv(t, false)
	for _, c := range []struct {
		auth, query string
		want        int
	}{
		{"", "", http.StatusUnauthorized},
		{basic("nobody", ""), "", http.StatusUnauthorized},
		{basic("web-portal", "wrong"), "", http.StatusUnauthorized},
		{basic("web-portal", ""), "", http.StatusUnauthorized},
		{bearer("forged"), "", http.StatusUnauthorized},
		{bearer(staffTok), "", http.StatusUnauthorized}, // a fleet API token
		{bearer(revokedTok), "", http.StatusForbidden},
		{basic("dept", "dept-secret"), "", http.StatusBadRequest},
		{basic("dept", "dept-secret"), "?channel=kiosk", http.StatusBadRequest},
		{basic("web-portal", "web-secret"), "", http.StatusOK},
		{basic("mini-program", ""), "", http.StatusOK},
		{basic("dept", "dept-secret"), "?channel=mobile", http.StatusOK},
		{bearer(aliceKiosk), "", http.StatusOK},
	} {
		status, _, _, ae := e.post(t, c.auth, c.query, e.event(fmt.Sprintf("evt-auth-%03d", len(c.auth)+len(c.query))))
		if status != c.want {
			t.Errorf("%q %q: status %d (%+v), want %d", c.auth, c.query, status, ae, c.want)
		}
	}
	evs := e.stored(t)
	byClient := map[string]store.Event{}
	for _, ev := range evs {
		byClient[ev.ClientID] = ev
	}
	if len(evs) != 4 || byClient["mini-program"].Channel != store.ChannelMiniProgram || byClient["dept"].Channel != store.ChannelMobile ||
		byClient["kiosk-shell"].Channel != store.ChannelKiosk || byClient["kiosk-shell"].KioskID != "kiosk-1" || byClient["kiosk-shell"].SiteID != "hall" {
		t.Fatalf("stored %+v", evs)
	}
	// CORS preflight.
	req, _ := http.NewRequest(http.MethodOptions, e.srv.URL+api.EventsPath, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", res.StatusCode, res.Header)
	}
}

// kioskRecord publishes an event record from kiosk dev as its agent would.
func (e *evEnv) kioskRecord(t *testing.T, dev string, seq uint64, body json.RawMessage) {
	t.Helper()
	b := wire.Batch{V: wire.Version, Epoch: "ep1", Records: []wire.Record{{Seq: seq, Kind: wire.KindEvent, Class: wire.Business,
		TS: e.now.UnixMilli(), Body: body}}}
	e.bus.Inject(dev, wire.Topic(dev, wire.ChUp), wire.Encode(b))
	deadline := time.Now().Add(wait)
	for {
		if up, _ := e.st.Watermark(t.Context(), dev, "ep1"); up >= seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("record %d of %s not committed", seq, dev)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEventsOneCitizenEveryChannel: the same citizen's events from the kiosk (its outbox), the
// web and the mobile app land under one pseudonym, never her account or subject; a kiosk record
// resent, or a second record with the same event, counts once; a revoked kiosk's events and an
// ID number in a property are refused, and no byte of either is stored.
func TestEventsOneCitizenEveryChannel(t *testing.T) {
	e := newEvEnv(t, false)
	e.post(t, bearer(aliceWeb), "", e.event("evt-web-00001"))
	e.post(t, bearer(aliceMobile), "", e.event("evt-mob-00001"))
	kiosk := e.event("evt-kio-00001", "sub", alice, "region", "")
	e.kioskRecord(t, "kiosk-1", 1, kiosk)
	e.kioskRecord(t, "kiosk-1", 1, kiosk) // resent
	e.kioskRecord(t, "kiosk-1", 2, kiosk) // a new record with the same event
	e.kioskRecord(t, "k-revoked", 1, e.event("evt-rev-00001", "sub", alice))
	e.kioskRecord(t, "kiosk-1", 3, e.event("evt-kio-00002", "sub", alice, "props", map[string]string{"note": "id " + canary}))
	status, _, res, ae := e.post(t, bearer(aliceWeb), "", e.event("evt-web-00002", "props", map[string]string{"note": canary}), e.event("evt-web-00003"))
	if status != http.StatusOK || res.Accepted != 1 || len(res.Rejected) != 1 || !strings.HasPrefix(res.Rejected[0].Fields[0], "props.note: holds an ID number") {
		t.Fatalf("canary batch: %d %+v %+v", status, res, ae)
	}
	evs := e.stored(t)
	if len(evs) != 4 {
		t.Fatalf("%d events, want 4: %+v", len(evs), evs)
	}
	for _, ev := range evs {
		if ev.Pseudonym != evs[0].Pseudonym || ev.Pseudonym == "" || strings.Contains(ev.Pseudonym, alice) {
			t.Fatalf("pseudonyms %q and %q", ev.Pseudonym, evs[0].Pseudonym)
		}
	}
	byChannel := map[string]int{}
	for _, ev := range evs {
		byChannel[ev.Channel]++
	}
	if byChannel[store.ChannelKiosk] != 1 || byChannel[store.ChannelWeb] != 2 || byChannel[store.ChannelMobile] != 1 {
		t.Fatalf("channels %v", byChannel)
	}
	// The kiosk records are stored (the agent moves on), the refused ones without their event.
	recs, err := e.st.ListRecords(t.Context(), store.RecordFilter{Kind: wire.KindEvent})
	if err != nil || len(recs) != 4 {
		t.Fatalf("records %d, %v", len(recs), err)
	}
	// Nothing refused, and neither the account nor the subject, is in the database files.
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(e.path + "*")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, secret := range []string{canary, "19491231", alice} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds %q", f, secret)
			}
		}
	}
	e.st, _ = sqlite.Open(context.Background(), e.path, nil) // closed by the cleanup
}

// TestEventsOverload: a batch that would overfill the queue, a client over its rate and more
// batches at once than the API takes are answered 429 with Retry-After, and nothing of them is
// stored; never a 5xx.
func TestEventsOverload(t *testing.T) {
	e := newEvEnv(t, true, func(c *events.Config, a *httpapi.Config) { c.Queue, c.ClientRate = 600, 1; a.EventsInFlight = 1 })
	batch := func(prefix string, n int) []json.RawMessage {
		var out []json.RawMessage
		for i := range n {
			out = append(out, e.event(fmt.Sprintf("%s-%05d", prefix, i)))
		}
		return out
	}
	// The committer is held: a first batch waits in the queue, and holds the one place in flight.
	done := e.postHeld(t, batch("evt-first", 500))
	deadline := time.Now().Add(wait)
	for {
		status, hdr, _, ae := e.post(t, bearer(aliceMobile), "", batch("evt-busy", 1)...)
		if status == http.StatusTooManyRequests && ae.Code == "overloaded" && hdr.Get("Retry-After") == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second batch while one is in flight: %d %+v", status, ae)
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case s := <-done:
		t.Fatalf("first batch answered %d before its commit", s)
	default:
	}
	e.ev.Run(cancelled()) // commits the queued batch and returns
	if s := <-done; s != http.StatusOK {
		t.Fatalf("first batch: %d", s)
	}
	if n := len(e.stored(t)); n != 500 {
		t.Fatalf("%d stored", n)
	}
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestEventsBehind: beyond what the committer commits in MaxWait (here, before any commit: one
// group of MaxEvents) new batches are refused with 429 (behind) although the queue has room, so
// that what is accepted is answered quickly; the waiting batch is committed all the same.
func TestEventsBehind(t *testing.T) {
	e := newEvEnv(t, true, func(c *events.Config, _ *httpapi.Config) { c.MaxEvents = 10 })
	var first []json.RawMessage
	for i := range 10 {
		first = append(first, e.event(fmt.Sprintf("evt-behind-%05d", i)))
	}
	done := e.postHeld(t, first)
	status, hdr, _, ae := e.post(t, bearer(aliceMobile), "", e.event("evt-behind-second"))
	if status != http.StatusTooManyRequests || !strings.Contains(ae.Message, "behind") || hdr.Get("Retry-After") == "" {
		t.Fatalf("batch behind a held committer: %d %+v", status, ae)
	}
	e.ev.Run(cancelled())
	if s := <-done; s != http.StatusOK {
		t.Fatalf("first batch: %d", s)
	}
}

// TestEventsQueueAndRate: the queue bound and the client rate.
func TestEventsQueueAndRate(t *testing.T) {
	e := newEvEnv(t, false, func(c *events.Config, _ *httpapi.Config) { c.Queue, c.ClientRate = 400, 1 })
	var big []json.RawMessage
	for i := range 401 {
		big = append(big, e.event(fmt.Sprintf("evt-big-%05d", i)))
	}
	status, hdr, _, ae := e.post(t, bearer(aliceWeb), "", big...)
	if status != http.StatusTooManyRequests || !strings.Contains(ae.Message, "queue_full") || hdr.Get("Retry-After") == "" {
		t.Fatalf("over the queue: %d %+v", status, ae)
	}
	// The refused batch cost no tokens: the bucket (burst 500) takes 400, then 100, then no more.
	status, _, res, _ := e.post(t, bearer(aliceWeb), "", big[:400]...)
	if status != http.StatusOK || res.Accepted != 400 {
		t.Fatalf("within the rate: %d %+v", status, res)
	}
	if status, _, res, _ = e.post(t, bearer(aliceWeb), "", big[300:400]...); status != http.StatusOK || res.Duplicates != 100 {
		t.Fatalf("within the rate: %d %+v", status, res)
	}
	status, hdr, _, ae = e.post(t, bearer(aliceWeb), "", big[400:401]...)
	if status != http.StatusTooManyRequests || !strings.Contains(ae.Message, "rate_limited") || hdr.Get("Retry-After") == "" {
		t.Fatalf("over the rate: %d %+v %v", status, ae, hdr)
	}
	// Another client has its own bucket.
	if status, _, _, _ := e.post(t, bearer(aliceMobile), "", big[400:401]...); status != http.StatusOK {
		t.Fatalf("another client: %d", status)
	}
}

// endless is a request body that never ends: a batch's opening, then blanks.
type endless struct{ started bool }

func (b *endless) Read(p []byte) (int, error) {
	if !b.started {
		b.started = true
		return copy(p, `{"events":[`), nil
	}
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// TestEventsAuthBeforeBody: a post without valid credentials is refused before its body is read:
// a body that never ends gets its 401 (reading it, the hub would answer 400 once past its bound).
func TestEventsAuthBeforeBody(t *testing.T) {
	e := newEvEnv(t, false)
	for _, auth := range []string{"", "Basic " + base64.StdEncoding.EncodeToString([]byte("web-portal:wrong")), bearer("no-such-token")} {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+api.EventsPath, &endless{})
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		res, err := e.srv.Client().Do(req.WithContext(ctx))
		if err != nil {
			t.Fatalf("%q: %v (the hub waited for the body)", auth, err)
		}
		res.Body.Close()
		cancel()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%q: %d", auth, res.StatusCode)
		}
	}
}
