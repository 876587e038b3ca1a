package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// get fetches a path as staff and returns the status and body.
func (e *evEnv) get(t *testing.T, path string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+api.Prefix+path, nil)
	req.Header.Set("Authorization", "Bearer "+staffTok)
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Content-Type"), string(b)
}

// anonymous posts one event of each of n anonymous mini-program installs, who0 to who<n-1>.
func (e *evEnv) anonymous(t *testing.T, prefix, who string, n int, kv ...any) {
	t.Helper()
	var evs []json.RawMessage
	for i := range n {
		evs = append(evs, e.event(fmt.Sprintf("%s-%05d", prefix, i), append([]any{"anonymousId", fmt.Sprint(who, i)}, kv...)...))
	}
	if status, _, res, ae := e.post(t, basic("mini-program", ""), "", evs...); status != http.StatusOK || res.Accepted != n {
		t.Fatalf("post: %d %+v %+v", status, res, ae)
	}
}

// TestAnalyticsSuppressed: a heat cell, a funnel stage and a failed search of 9 citizens are
// never shown nor exported; those of 10 are, in JSON and CSV; purging raw events past the
// retention keeps the rollups and so the answers.
func TestAnalyticsSuppressed(t *testing.T) {
	e := newEvEnv(t, false)
	e.anonymous(t, "nine", "n", 9, "service", "svc-nine")
	e.anonymous(t, "ten", "t", 10, "service", "svc-ten")
	e.anonymous(t, "tenstart", "t", 10, "service", "svc-ten", "type", "start")
	e.anonymous(t, "rare", "r", 9, "type", "search", "service", "", "props", map[string]string{"query": "rare form", "results": "0"})
	e.anonymous(t, "miss", "m", 10, "type", "search", "service", "", "props", map[string]string{"query": "=HYPERLINK(1)", "results": "0"})
	for _, path := range []string{"/analytics/heat?by=service", "/analytics/heat?by=service,channel,region,hour", "/analytics/heat?by=service&format=csv",
		"/analytics/funnel", "/analytics/funnel?format=csv", "/analytics/search-misses", "/analytics/search-misses?format=csv"} {
		status, ct, body := e.get(t, path)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, status, body)
		}
		if strings.Contains(body, "svc-nine") || strings.Contains(body, "rare form") {
			t.Errorf("%s shows a group of 9 citizens:\n%s", path, body)
		}
		if !strings.Contains(body, "svc-ten") && !strings.Contains(body, "hyperlink") {
			t.Errorf("%s leaves out a group of 10:\n%s", path, body)
		}
		if strings.Contains(path, "csv") != strings.HasPrefix(ct, "text/csv") {
			t.Errorf("%s: content type %s", path, ct)
		}
	}
	var heat api.Heat
	_, _, body := e.get(t, "/analytics/heat?by=service,channel,region,hour")
	json.Unmarshal([]byte(body), &heat)
	if heat.K != 10 || len(heat.Cells) != 1 || heat.Cells[0].Citizens != 10 || heat.Cells[0].Events != 20 || heat.Cells[0].Channel != "miniprogram" ||
		heat.Cells[0].Region != "440305" || heat.Cells[0].Hour == nil {
		t.Fatalf("heat %+v", heat)
	}
	if _, _, csv := e.get(t, "/analytics/search-misses?format=csv"); !strings.Contains(csv, "'=hyperlink(1),10,10") {
		t.Errorf("a formula in the CSV is not defused:\n%s", csv)
	}
	var funnel api.Funnel
	_, _, body = e.get(t, "/analytics/funnel")
	json.Unmarshal([]byte(body), &funnel)
	if len(funnel.Steps) != 2 || funnel.Steps[0].Stage != "view" || funnel.Steps[1].Stage != "start" {
		t.Fatalf("funnel %+v", funnel)
	}
	for _, path := range []string{"/analytics/heat?by=colour", "/analytics/heat?from=2026-13-01", "/analytics/heat?format=xml"} {
		if status, _, body := e.get(t, path); status != http.StatusBadRequest {
			t.Errorf("%s: %d %s", path, status, body)
		}
	}
	// Past the retention the raw events go; the rollups, and so the answers, stay.
	day := e.now.In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly)
	_, _, before := e.get(t, "/analytics/heat?by=service&from="+day)
	e.now = e.now.Add(181 * 24 * time.Hour)
	n, err := e.ev.Purge(t.Context())
	if err != nil || n != 48 {
		t.Fatalf("purged %d, %v", n, err)
	}
	if left := e.stored(t); len(left) != 0 {
		t.Fatalf("%d events left", len(left))
	}
	_, _, after := e.get(t, "/analytics/heat?by=service&from="+day+"&to="+e.now.Format(time.RFC3339))
	var hb, ha api.Heat
	json.Unmarshal([]byte(before), &hb)
	json.Unmarshal([]byte(after), &ha)
	if len(ha.Cells) != 1 || ha.Cells[0] != hb.Cells[0] {
		t.Fatalf("heat before the purge %+v, after %+v", hb.Cells, ha.Cells)
	}
}
