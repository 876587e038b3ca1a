package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/events"
	"github.com/kioskfleet/kioskfleet/hub/httpapi"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
)

// publicClients authenticates the public mini-program client by its ID.
type publicClients struct{}

func (publicClients) AuthenticateClient(_ context.Context, id, secret string) (store.Client, error) {
	if id == "mini-program" && secret == "" {
		return store.Client{ID: id}, nil
	}
	return store.Client{}, httpapi.ErrUnauthenticated
}

type noTokens struct{}

func (noTokens) Authenticate(*http.Request) (httpapi.Principal, error) {
	return httpapi.Principal{}, httpapi.ErrUnauthenticated
}

// faults sits in front of the hub: it answers 429 to the next n429 event posts, drops the
// answer of the next nDrop (after the hub committed them), or closes every connection while down.
type faults struct {
	n429, nDrop atomic.Int32
	down        atomic.Bool
	next        http.Handler
}

func (f *faults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if what, ok := strings.CutPrefix(r.URL.Path, "/_control/"); ok {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		switch what {
		case "429":
			f.n429.Store(int32(n))
		case "drop":
			f.nDrop.Store(int32(n))
		case "down":
			f.down.Store(r.URL.Query().Get("on") == "1")
		}
		return
	}
	if r.URL.Path != "/api/v1/events" {
		f.next.ServeHTTP(w, r)
		return
	}
	switch {
	case f.down.Load():
		hangUp(w)
	case f.n429.Add(-1) >= 0:
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":{"code":"overloaded","message":"test"}}`, http.StatusTooManyRequests)
	case f.nDrop.Add(-1) >= 0:
		f.next.ServeHTTP(httptest.NewRecorder(), r) // committed, but the page never hears of it
		hangUp(w)
	default:
		f.next.ServeHTTP(w, r)
	}
}

func hangUp(w http.ResponseWriter) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		c.Close()
	}
}

// TestSDK drives the JavaScript SDK, as the hub serves it, in Node against a live hub: batching,
// retry after 429 (honouring Retry-After), a resend after a lost answer counted once, an
// offline queue that survives a page reload, and an ID number refused and reported.
func TestSDK(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (Debian: apt-get install nodejs)")
	}
	dbPath := filepath.Join(t.TempDir(), "hub.db")
	st, err := sqlite.Open(context.Background(), dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ev, err := events.New(events.Config{Secret: bytes.Repeat([]byte{5}, 32)}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { ev.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	mux := http.NewServeMux()
	mux.Handle("/api/", httpapi.New(httpapi.Config{Store: st, Auth: noTokens{}, Events: ev, Clients: publicClients{}}))
	mux.Handle("GET "+events.SDKPath, events.SDK())
	srv := httptest.NewServer(&faults{next: mux})
	defer srv.Close()

	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	cmd := exec.CommandContext(cctx, node, "testdata/sdkdrive.js")
	cmd.Env = append(os.Environ(), "HUB="+srv.URL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var got struct {
		Posts, BatchPosts, Waited429, QueuedOffline, StoredOffline, MaxDigitRun int
		RejectedFields                                                          []string
		Stats                                                                   struct{ Accepted, Duplicates, Rejected, Retries int }
		AnonymousID                                                             string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	t.Logf("sdk: %+v", got)
	if got.BatchPosts != 3 {
		t.Errorf("120 events in %d posts, want 3 of at most 50", got.BatchPosts)
	}
	if got.Waited429 < 900 {
		t.Errorf("after two 429s with Retry-After: 1 the SDK resent after %d ms", got.Waited429)
	}
	// An ID the SDK made up never looks like a resident ID number (the hub would refuse its event,
	// or every event of the install).
	if got.MaxDigitRun > 8 {
		t.Errorf("an ID the SDK made up holds a run of %d digits", got.MaxDigitRun)
	}
	if got.QueuedOffline != 7 || got.StoredOffline != 7 {
		t.Errorf("offline: %d queued, %d in storage; want 7", got.QueuedOffline, got.StoredOffline)
	}
	if got.Stats.Rejected != 1 || len(got.RejectedFields) != 1 || !strings.Contains(got.RejectedFields[0], "ID number") {
		t.Errorf("canary: rejected %d, fields %q", got.Stats.Rejected, got.RejectedFields)
	}
	if got.Stats.Duplicates < 5 || got.Stats.Retries < 4 {
		t.Errorf("stats %+v: want the 5 events of the lost answer as duplicates, and retries", got.Stats)
	}
	evs, err := st.ListEvents(t.Context(), store.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	const want = 120 + 10 + 5 + 7 + 1
	if len(evs) != want {
		t.Fatalf("%d events stored, want %d (each once)", len(evs), want)
	}
	for _, e := range evs {
		if e.Channel != store.ChannelMiniProgram || e.Pseudonym == "" || e.Pseudonym == got.AnonymousID || e.Region != "440305" {
			t.Fatalf("stored %+v", e)
		}
		if strings.Contains(e.Props["query"], "0519") {
			t.Fatalf("the ID number was stored: %+v", e)
		}
	}
}
