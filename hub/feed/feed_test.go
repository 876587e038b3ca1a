package feed_test

import (
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/feed"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

func TestFeed(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	f := feed.New(3, func() time.Time { return at })
	a, err := f.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := f.Subscribe()
	// One records notice per kiosk of a group; one presence notice per update.
	f.Committed([]store.Batch{{DeviceID: "kf-1"}, {DeviceID: "kf-2"}, {DeviceID: "kf-1"}})
	f.PresenceWritten([]store.PresenceUpdate{{DeviceID: "kf-3", Online: true, At: at}})
	want := []api.Notice{{Kind: api.NoticeRecords, DeviceID: "kf-1", At: at}, {Kind: api.NoticeRecords, DeviceID: "kf-2", At: at},
		{Kind: api.NoticePresence, DeviceID: "kf-3", Online: true, At: at}}
	for _, s := range []*feed.Sub{a, b} {
		for i, w := range want {
			if got := <-s.C; got != w {
				t.Fatalf("notice %d: %+v, want %+v", i, got, w)
			}
		}
		if s.Lost() {
			t.Fatal("lost notices")
		}
	}
	// A subscriber that does not read loses what does not fit, and is told so once; the other
	// one is not held up.
	b.Close()
	f.Committed([]store.Batch{{DeviceID: "kf-1"}, {DeviceID: "kf-2"}, {DeviceID: "kf-3"}, {DeviceID: "kf-4"}})
	if !a.Lost() || a.Lost() || f.Lost() != 1 || len(a.C) != 3 || f.Subscribers() != 1 {
		t.Fatalf("overflow: lost %d, %d queued, %d subscribers", f.Lost(), len(a.C), f.Subscribers())
	}
	f.Close()
	for range a.C {
	}
	if _, err := f.Subscribe(); err != feed.ErrClosed {
		t.Fatalf("subscribe after close: %v", err)
	}
	f.Committed([]store.Batch{{DeviceID: "kf-1"}}) // no panic: nobody listens
}
