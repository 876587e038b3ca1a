package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/events"
	"github.com/kioskfleet/kioskfleet/hub/httpapi"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// benchHub runs the event room and the API on a fresh SQLite store (synchronous=FULL).
func benchHub(b *testing.B) *httptest.Server {
	b.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "hub.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	ev, err := events.New(events.Config{Secret: bytes.Repeat([]byte{5}, 32), ClientRate: 1e9}, st, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { ev.Run(ctx) })
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Store: st, Auth: noTokens{}, Events: ev, Clients: publicClients{}}))
	b.Cleanup(func() { srv.Close(); cancel(); wg.Wait(); st.Close() })
	return srv
}

var benchSeq atomic.Int64

// benchBatch returns a batch of n events of 1,000 citizens, 50 services, 4 regions.
func benchBatch(n int) []byte {
	evs := make([]json.RawMessage, n)
	now := time.Now().UnixMilli()
	for i := range evs {
		k := benchSeq.Add(1)
		evs[i], _ = json.Marshal(map[string]any{"v": 1, "id": fmt.Sprintf("bench-%012d", k), "type": "view", "ts": now,
			"service": fmt.Sprintf("svc-%d", k%50), "region": fmt.Sprintf("4403%02d", k%4), "anonymousId": fmt.Sprintf("a-%d", k%1000)})
	}
	body, _ := json.Marshal(api.EventBatch{Events: evs})
	return body
}

func post(b *testing.B, c *http.Client, url string, body []byte) {
	req, _ := http.NewRequest(http.MethodPost, url+api.EventsPath, bytes.NewReader(body))
	req.SetBasicAuth("mini-program", "")
	res, err := c.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b.Errorf("status %d", res.StatusCode)
	}
}

// BenchmarkIngestBatched posts batches of 500 events from 16 clients at once; each answer means
// durable. Target: 50,000 events/s.
func BenchmarkIngestBatched(b *testing.B) {
	srv := benchHub(b)
	const per = 500
	bodies := make(chan []byte, b.N)
	for range b.N {
		bodies <- benchBatch(per)
	}
	close(bodies)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for body := range bodies {
				post(b, srv.Client(), srv.URL, body)
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N*per)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkIngestSingle posts one event per request from 64 clients at once. Target: 5,000
// requests/s.
func BenchmarkIngestSingle(b *testing.B) {
	srv := benchHub(b)
	c := srv.Client()
	c.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i] = benchBatch(1)
	}
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				post(b, c, srv.URL, bodies[i])
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
