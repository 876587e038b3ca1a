package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// TestEventStream: GET /feed streams the notices of the caller's scope as server-sent events
// (a county engineer's stream leaves out another county's kiosks; the admin's has them all);
// a role without fleet access is refused; streams end when the feed closes.
func TestEventStream(t *testing.T) {
	e := newEnv(t)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "nanshan", Name: "南山", Region: "440305"}, 201, nil)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "futian", Name: "福田", Region: "440304"}, 201, nil)
	ours, theirs := e.enroll(t, "nanshan").DeviceID, e.enroll(t, "futian").DeviceID

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	stream := func(tok string, want int) <-chan []api.Notice {
		out := make(chan []api.Notice, 1)
		wg.Go(func() {
			var got []api.Notice
			c := &api.Client{BaseURL: e.srv.URL, Token: tok}
			sctx, stop := context.WithCancel(ctx)
			defer stop()
			err := c.Feed(sctx, func(ev api.Notice) {
				if got = append(got, ev); len(got) == want {
					stop()
				}
			})
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("stream: %v", err)
			}
			out <- got
		})
		return out
	}
	county, admin := stream(countyTok, 2), stream(adminTok, 3)
	waitSubscribers(t, e, 2)
	at := time.Now().UTC().Truncate(time.Second)
	e.feed.Publish(api.Notice{Kind: api.NoticePresence, DeviceID: theirs, Online: true, At: at},
		api.Notice{Kind: api.NoticePresence, DeviceID: ours, Online: true, At: at},
		api.Notice{Kind: api.NoticeRecords, DeviceID: ours, At: at})
	if got := <-county; len(got) != 2 || got[0].DeviceID != ours || !got[0].Online || got[1].Kind != api.NoticeRecords || got[1].DeviceID != ours {
		t.Errorf("county engineer's events: %+v", got)
	}
	if got := <-admin; len(got) != 3 || got[0].DeviceID != theirs {
		t.Errorf("admin's events: %+v", got)
	}

	var ae *api.Error
	err := (&api.Client{BaseURL: e.srv.URL, Token: reviewerTok}).Feed(ctx, func(api.Notice) {})
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Errorf("reviewer: %v", err)
	}
	// Closing the feed (the hub stopping) ends the stream.
	wg.Wait()
	waitSubscribers(t, e, 0)
	done := make(chan error, 1)
	go func() { done <- (&api.Client{BaseURL: e.srv.URL, Token: adminTok}).Feed(ctx, func(api.Notice) {}) }()
	waitSubscribers(t, e, 1)
	e.feed.Close()
	if err := <-done; err != nil {
		t.Errorf("stream after the feed closed: %v", err)
	}
}

// waitSubscribers waits until the feed has n subscribers.
func waitSubscribers(t *testing.T, e *env, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); e.feed.Subscribers() != n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers, want %d", e.feed.Subscribers(), n)
		}
	}
}

// TestEventStreamFlushesTogether: notices that queue for a viewer leave in one flush (one HTTP
// chunk here, one TLS record and write in the hub), not one each; none is lost or reordered.
func TestEventStreamFlushesTogether(t *testing.T) {
	e := newEnv(t)
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer %s\r\n\r\n", api.FeedPath, adminTok)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("feed: %v, %+v", err, resp)
	}
	waitSubscribers(t, e, 1)
	const n = 200
	var evs []api.Notice
	for i := range n {
		evs = append(evs, api.Notice{Kind: api.NoticePresence, DeviceID: fmt.Sprintf("k-%03d", i), Online: true, At: time.Now()})
	}
	e.feed.Publish(evs...)
	// Read the chunks as the hub flushed them (RFC 9112 §7.1): size line, data, CRLF.
	var got []string
	var stream string // what came so far, from the last whole line on (chunks split lines)
	chunks := 0
	for len(got) < n {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d notices in %d chunks: %v", len(got), chunks, err)
		}
		size, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
		if err != nil {
			t.Fatalf("chunk size %q: %v", line, err)
		}
		data := make([]byte, size+2)
		if _, err := io.ReadFull(br, data); err != nil {
			t.Fatal(err)
		}
		chunks++
		stream += string(data[:size])
		lines := strings.Split(stream, "\n")
		stream = lines[len(lines)-1]
		for _, l := range lines[:len(lines)-1] {
			if rest, ok := strings.CutPrefix(l, "data: "); ok {
				var ev api.Notice
				if err := json.Unmarshal([]byte(rest), &ev); err != nil {
					t.Fatalf("notice %q: %v", rest, err)
				}
				got = append(got, ev.DeviceID)
			}
		}
	}
	for i, id := range got {
		if want := fmt.Sprintf("k-%03d", i); id != want {
			t.Fatalf("notice %d is %s, want %s", i, id, want)
		}
	}
	// The retry line's flush, then the notices: a few flushes at most (the first notice may
	// leave before the others are queued), never one each.
	if chunks > n/10 {
		t.Fatalf("%d notices came in %d chunks: flushed one by one", n, chunks)
	}
}
