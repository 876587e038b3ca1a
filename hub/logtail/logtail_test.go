package logtail

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/gb11643"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

const canary = "11010519491231002X"

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func batch(tail string, leftMs int64, end bool, texts ...string) []byte {
	b := wire.LogBatch{V: wire.Version, Tail: tail, LeftMs: leftMs, End: end, Lines: []wire.LogLine{}}
	for _, s := range texts {
		b.Lines = append(b.Lines, wire.LogLine{TS: 1765000000000, Level: "INFO", Text: s})
	}
	return wire.Encode(b)
}

func TestRoomKeepsRedactsAndEnds(t *testing.T) {
	c := &clock{time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	var notices []api.Notice
	r := New(Config{Lines: 3, Now: c.now, Notify: func(n ...api.Notice) { notices = append(notices, n...) }})
	topic := wire.Topic("k-1", wire.ChLog)
	r.Receive("k-1", topic, batch("c-1", 60_000, false, "a", "card "+canary+" read"))
	got := r.Lines("k-1", 0)
	if !got.Active || !got.Until.Equal(c.t.Add(time.Minute)) || got.Tail != "c-1" || got.Next != 2 || len(got.Lines) != 2 {
		t.Fatalf("Lines = %+v", got)
	}
	if got.Lines[1].Text != "card [id] read" || got.Lines[1].N != 2 || !got.Lines[1].Received.Equal(c.t) {
		t.Fatalf("line 2 = %+v: not redacted by the hub", got.Lines[1])
	}
	if len(notices) != 1 || notices[0].Kind != api.NoticeLog || notices[0].DeviceID != "k-1" {
		t.Fatalf("notices %+v", notices)
	}
	// The ring is bounded; after= continues.
	c.t = c.t.Add(time.Second)
	r.Receive("k-1", topic, batch("c-1", 59_000, false, "c", "d"))
	if got := r.Lines("k-1", 0); len(got.Lines) != 3 || got.Lines[0].Text != "card [id] read" || got.Lines[2].N != 4 {
		t.Fatalf("bounded ring = %+v", got.Lines)
	}
	if got := r.Lines("k-1", 3); len(got.Lines) != 1 || got.Lines[0].Text != "d" {
		t.Fatalf("after 3 = %+v", got.Lines)
	}
	if got := r.Lines("k-1", 99); len(got.Lines) != 3 {
		t.Fatalf("a cursor from before a restart reads from the start: %+v", got.Lines)
	}
	// The end of the tail, or its deadline passing, makes it inactive.
	r.Receive("k-1", topic, batch("c-1", 0, true))
	if got := r.Lines("k-1", 0); got.Active {
		t.Fatalf("ended tail active: %+v", got)
	}
	r.Receive("k-1", topic, batch("c-2", 1000, false))
	c.t = c.t.Add(2 * time.Second)
	if got := r.Lines("k-1", 0); got.Active || got.Tail != "c-2" {
		t.Fatalf("tail past its deadline: %+v", got)
	}
	if got := r.Lines("k-2", 0); got.Active || len(got.Lines) != 0 || got.Lines == nil {
		t.Fatalf("unknown kiosk: %+v", got)
	}
}

func TestRoomRefusesAndBounds(t *testing.T) {
	c := &clock{time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	r := New(Config{Lines: 1000, Devices: 2, Rate: 10, Burst: 5, Now: c.now})
	reg := prometheus.NewRegistry()
	if err := r.Register(reg); err != nil {
		t.Fatal(err)
	}
	// Another device's topic, a wrong channel, bad payloads: refused and counted.
	r.Receive("k-1", wire.Topic("k-2", wire.ChLog), batch("c", 1, false, "x"))
	r.Receive("k-1", wire.Topic("k-1", wire.ChUp), batch("c", 1, false, "x"))
	r.Receive("k-1", wire.Topic("k-1", wire.ChLog), []byte(`{"v":2}`))
	r.Receive("k-1", wire.Topic("k-1", wire.ChLog), []byte(`{"v":1,"tail":"c","leftMs":1,"lines":[{"ts":1,"level":"LOUD","text":"x"}]}`))
	r.Receive("k-1", wire.Topic("k-1", wire.ChLog), []byte(strings.Repeat(" ", wire.MaxLogBatchBytes+1)))
	for reason, want := range map[string]float64{"bad_topic": 2, "unknown_version": 1, "malformed": 2} {
		if got := metric(t, reg, "kf_logtail_rejected_total", reason); got != want {
			t.Errorf("rejected %s = %v, want %v", reason, got, want)
		}
	}
	if got := r.Lines("k-1", 0); len(got.Lines) != 0 {
		t.Fatalf("refused batches kept lines: %+v", got.Lines)
	}
	// Rate: a burst of 5, then 10 a second.
	many := make([]string, 8)
	for i := range many {
		many[i] = fmt.Sprint("line ", i)
	}
	r.Receive("k-1", wire.Topic("k-1", wire.ChLog), batch("c", 1000, false, many...))
	c.t = c.t.Add(200 * time.Millisecond) // 2 more tokens
	r.Receive("k-1", wire.Topic("k-1", wire.ChLog), batch("c", 1000, false, many...))
	got := r.Lines("k-1", 0)
	if len(got.Lines) != 7 || got.Dropped != 9 || metric(t, reg, "kf_logtail_dropped_lines_total", "") != 9 || metric(t, reg, "kf_logtail_lines_total", "") != 7 {
		t.Fatalf("rate bound: %d lines, %d dropped", len(got.Lines), got.Dropped)
	}
	// At most Devices kiosks are kept: the least recently streaming goes.
	r.Receive("k-2", wire.Topic("k-2", wire.ChLog), batch("c", 1000, false, "b"))
	r.Receive("k-3", wire.Topic("k-3", wire.ChLog), batch("c", 1000, false, "c"))
	if got := r.Lines("k-1", 0); len(got.Lines) != 0 || got.Tail != "" {
		t.Fatalf("k-1 kept past the bound of kiosks: %+v", got)
	}
	if got := r.Lines("k-3", 0); len(got.Lines) != 1 {
		t.Fatalf("k-3: %+v", got)
	}
}

// The hub's parser of the log payload: whatever bytes a kiosk sends, the room neither panics
// nor keeps a line that is over its bound, not UTF-8, or holds an ID-shaped number.
func FuzzReceive(f *testing.F) {
	for _, s := range [][]byte{
		batch("c-1", 1000, false, "hello "+canary, "phone 13812345678"),
		batch("c-1", 0, true),
		[]byte(`{"v":1,"tail":"c","leftMs":1,"dropped":3,"lines":[{"ts":-1,"level":"WARN","text":"１１０１０５１９４９１２３１００２Ｘ"}]}`),
		[]byte(`{"v":1,"tail":"c","leftMs":1,"lines":[{"ts":1,"level":"INFO","text":"a","text":"b"}]}`),
		[]byte(`{"v":1}`), []byte(`[]`), []byte("\x00"),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &clock{time.Unix(1765000000, 0)}
		r := New(Config{Now: c.now})
		r.Receive("k-1", wire.Topic("k-1", wire.ChLog), b)
		for _, l := range r.Lines("k-1", 0).Lines {
			if len(l.Text) > wire.MaxLogLineBytes || strings.Contains(l.Text, canary) || gb11643.Contains(l.Text) {
				t.Fatalf("kept line %q", l.Text)
			}
		}
	})
}

// metric returns the value of counter name (with label reason, if not "") in reg.
func metric(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if reason == "" || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == reason) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
