package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// BenchmarkCaseUpdateSeenAllChannels: a department's status update (the department API over
// HTTPS) until her web and mobile subscribers (the hub's case stream) and the kiosk shell's page
// (the shell's own stream, which the agent relays from the hub for her ID-card session, read as
// the page reads it) have each seen it. Target: p99 <= 1 s.
func BenchmarkCaseUpdateSeenAllChannels(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	ck := newCaseKiosk(b, ctx)
	var c api.Case
	ck.dept("POST", "/cases", api.CreateCase{Ref: "GA-BENCH", Service: "hukou.transfer", Department: "公安局", Title: "户口迁移",
		CitizenToken: "kiosk-session"}, &c)
	var ev api.CaseEvent
	ck.dept("POST", "/cases/"+c.ID+"/status", api.SetCaseStatus{Status: api.CaseAccepted}, &ev)

	notes := map[string]chan string{"web": make(chan string, 16), "mobile": make(chan string, 16), "kiosk": make(chan string, 16)}
	send := func(ch, note string) error {
		select {
		case notes[ch] <- note:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var watchers sync.WaitGroup
	defer func() { cancel(); watchers.Wait() }()
	for ch, tok := range map[string]string{"web": "web-session", "mobile": "mobile-session"} {
		watchers.Go(func() {
			_ = ck.hubClient.WatchCases(ctx, tok, ev.Seq, func(ev api.CaseEvent) error { return send(ch, ev.Note) })
		})
	}
	stream, err := ck.shellGet(ctx, fmt.Sprintf("case-events?after=%d", ev.Seq))
	if err != nil || stream.StatusCode != http.StatusOK {
		b.Fatalf("the shell's case stream: %v %v", err, stream)
	}
	watchers.Go(func() {
		defer stream.Body.Close()
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev api.CaseEvent
				if json.Unmarshal([]byte(data), &ev) == nil && send("kiosk", ev.Note) != nil {
					return
				}
			}
		}
	})

	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		note := fmt.Sprintf("round %d", i)
		start := time.Now()
		ck.dept("POST", "/cases/"+c.ID+"/status", api.SetCaseStatus{Status: api.CaseAccepted, Note: note}, nil)
		for ch, got := range notes {
			select {
			case n := <-got:
				if n != note {
					b.Fatalf("%s saw %q, want %q", ch, n, note)
				}
			case <-time.After(10 * time.Second):
				b.Fatalf("%s: update %q not seen in 10 s", ch, note)
			}
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
}
