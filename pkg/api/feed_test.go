package api

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestReadEvents(t *testing.T) {
	stream := "retry: 1000\n\n: ping\n\n" +
		`data: {"kind":"presence","deviceId":"kf-1","online":true,"at":"2026-12-06T10:00:00Z"}` + "\r\n\r\n" +
		"event: x\nid: 7\ndata: {\"kind\":\"records\",\ndata: \"deviceId\":\"kf-2\"}\n\n" +
		"data: {\"kind\":\"resync\"}\n" // not ended: not delivered
	var got []Notice
	if err := ReadFeed(strings.NewReader(stream), func(e Notice) { got = append(got, e) }); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	if len(got) != 2 || got[0] != (Notice{Kind: NoticePresence, DeviceID: "kf-1", Online: true, At: at}) ||
		got[1].Kind != NoticeRecords || got[1].DeviceID != "kf-2" {
		t.Fatalf("events %+v", got)
	}
	for _, bad := range []string{"data: {}\n\n", "data: [1]\n\n", "data: " + strings.Repeat("x", maxEventLine+1) + "\n\n"} {
		if err := ReadFeed(strings.NewReader(bad), func(Notice) { t.Errorf("event from %.30q", bad) }); !errors.Is(err, ErrBadFeed) {
			t.Errorf("%.30q: error %v, want ErrBadFeed", bad, err)
		}
	}
}

func FuzzReadEvents(f *testing.F) {
	f.Add("data: {\"kind\":\"presence\",\"deviceId\":\"kf-1\"}\n\n: ping\n\n")
	f.Add("data: {\"kind\":\ndata: \"x\"}\r\n\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		_ = ReadFeed(strings.NewReader(s), func(e Notice) {
			if e.Kind == "" {
				t.Fatalf("event without a kind from %q", s)
			}
		})
	})
}
