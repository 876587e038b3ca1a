package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// webhookReceiver is an alert webhook's receiver: down (503) until up is set, then it accepts
// each notification and counts it by its Idempotency-Key.
type webhookReceiver struct {
	up       atomic.Bool
	attempts atomic.Int64
	mu       sync.Mutex
	got      map[string]int
	alerts   map[string]api.Alert
}

func (rc *webhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.attempts.Add(1)
	body, _ := io.ReadAll(r.Body)
	if !rc.up.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	var a api.Alert
	key := r.Header.Get("Idempotency-Key")
	if err := json.Unmarshal(body, &a); err != nil || key == "" {
		http.Error(w, "bad notification", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.got[key]++
	rc.alerts[key] = a
}

func (rc *webhookReceiver) counts() map[string]int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[string]int, len(rc.got))
	for k, v := range rc.got {
		out[k] = v
	}
	return out
}

// TestAlertWebhookThroughKill9: an alert's notification is owed until its receiver accepts it,
// whatever happens to the hub meanwhile. A kiosk enrolled and never connected is offline; past
// --offline-after the hub's sweep raises its alert and tries the webhook, whose receiver is
// down; the hub is killed (-9) while it retries, and again once it was back and tried again; the
// receiver comes up, the hub is started once more and delivers the notification, once, and
// deletes it from its outbox (nothing left to send again).
func TestAlertWebhookThroughKill9(t *testing.T) {
	rc := &webhookReceiver{got: map[string]int{}, alerts: map[string]api.Alert{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	h := unstartedHub(t)
	h.args = []string{"--alert-webhook", srv.URL, "--offline-after", "1s"} // swept every second
	h.start()
	h.readToken()
	h.site("hall-1")
	_, id := h.enroll("hall-1")

	waitFor(t, 20*time.Second, "a delivery attempted", func() bool { return rc.attempts.Load() >= 1 })
	h.p.kill9()
	tried := rc.attempts.Load()
	h.start()
	waitFor(t, 20*time.Second, "tried again by the restarted hub", func() bool { return rc.attempts.Load() > tried })
	h.p.kill9()

	rc.up.Store(true)
	h.start()
	waitFor(t, 30*time.Second, "the notification accepted", func() bool { return len(rc.counts()) >= 1 })
	h.p.stop()
	st, err := sqlite.Open(t.Context(), filepath.Join(h.dir, "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := st.CountAlertNotices(t.Context()); err != nil || n != 0 {
		t.Fatalf("%d notices still owed after the delivery (%v), want 0", n, err)
	}
	got := rc.counts()
	if len(got) != 1 {
		t.Fatalf("%d notifications, want 1: %v", len(got), got)
	}
	for k, n := range got {
		a := rc.alerts[k]
		if n != 1 || a.DeviceID != id || a.Rule != "offline" || a.State != "open" || k != fmt.Sprintf("alert-%d-open", a.ID) {
			t.Fatalf("notification %s (%d times): %+v, want the kiosk's offline alert, opened, once", k, n, a)
		}
	}
}
