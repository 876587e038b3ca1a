package httpapi_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// BenchmarkCaseUpdateSeen: a department's status update (through the department API) until her
// web, mobile and kiosk subscribers (the case stream, as the kiosk shell's relay reads it) have
// each seen it. Target: p99 <= 1 s.
func BenchmarkCaseUpdateSeen(b *testing.B) {
	e := newEvEnv(b, false)
	subs := []*subscriber{e.subscribe(b, aliceWeb, ""), e.subscribe(b, aliceMobile, ""), e.subscribe(b, aliceKiosk, "")}
	var c api.Case
	if status, ae := e.call(b, "POST", "/cases", dept, api.CreateCase{Ref: "GA-BENCH", Service: "hukou.transfer", Department: "公安局",
		Title: "户口迁移", CitizenToken: aliceKiosk}, &c); status != http.StatusCreated {
		b.Fatalf("create: %d %+v", status, ae)
	}
	for _, s := range subs {
		s.next(b)
	}
	// A note on the same status is an update that any number of rounds may repeat.
	e.call(b, "POST", "/cases/"+c.ID+"/status", dept, api.SetCaseStatus{Status: api.CaseAccepted}, nil)
	for _, s := range subs {
		s.next(b)
	}
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		start := time.Now()
		note := fmt.Sprintf("round %d", i)
		if status, ae := e.call(b, "POST", "/cases/"+c.ID+"/status", dept, api.SetCaseStatus{Status: api.CaseAccepted, Note: note}, nil); status != http.StatusOK {
			b.Fatalf("update: %d %+v", status, ae)
		}
		for _, s := range subs {
			if ev := s.next(b); ev.Note != note {
				b.Fatalf("got %+v, want %q", ev, note)
			}
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
}
