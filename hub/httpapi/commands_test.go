package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func TestCommands(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	dev := e.enroll(t, "sz-a").DeviceID
	other := e.enroll(t, "sz-a").DeviceID

	var c fleet.Command
	e.do(t, "POST", p+"/devices/"+dev+"/commands", opsTok, api.CreateCommand{Name: "print-test-page", Args: json.RawMessage(`{"printer":"receipt0"}`)}, 202, &c)
	now := e.clock.Now()
	if c.State != wire.CmdQueued || c.DeviceID != dev || c.Name != "print-test-page" || string(c.Args) != `{"printer":"receipt0"}` ||
		!c.CreatedAt.Equal(now) || !c.ExpiresAt.Equal(now.Add(time.Hour)) || !strings.HasPrefix(c.ID, "c-") {
		t.Fatalf("created %+v", c)
	}
	if pending, _ := e.disp.calls(); !slices.Equal(pending, []string{dev}) {
		t.Fatalf("SendPending calls %v, want one for %s", pending, dev)
	}
	// A connected device has it at once: the answer says delivered.
	e.sess.connected[dev] = true
	var c2 fleet.Command
	e.do(t, "POST", p+"/devices/"+dev+"/commands", opsTok, api.CreateCommand{Name: "reboot", TTL: "168h"}, 202, &c2)
	if c2.State != wire.CmdDelivered || !c2.ExpiresAt.Equal(now.Add(168*time.Hour)) {
		t.Fatalf("command to a connected device: %+v", c2)
	}

	var got fleet.Command
	e.do(t, "GET", p+"/commands/"+c.ID, opsTok, nil, 200, &got)
	if got.ID != c.ID || got.State != wire.CmdDelivered {
		t.Fatalf("get %+v", got)
	}
	var cs api.Commands
	e.do(t, "GET", p+"/devices/"+dev+"/commands", opsTok, nil, 200, &cs)
	if len(cs.Commands) != 2 || cs.Commands[0].ID != c2.ID || cs.Commands[1].ID != c.ID {
		t.Fatalf("commands %+v, want newest first", cs.Commands)
	}
	e.do(t, "GET", p+"/devices/"+dev+"/commands?limit=1", opsTok, nil, 200, &cs)
	if len(cs.Commands) != 1 || cs.Commands[0].ID != c2.ID {
		t.Fatalf("limit=1: %+v", cs.Commands)
	}
	if r := e.do(t, "GET", p+"/devices/"+other+"/commands", opsTok, nil, 200, nil); !strings.Contains(string(r.body), `"commands":[]`) {
		t.Fatalf("no commands: %s", r.body)
	}
	var det api.DeviceDetail
	e.do(t, "GET", p+"/devices/"+dev, opsTok, nil, 200, &det)
	if len(det.Commands) != 2 || det.Desired != nil || det.Reported != nil || det.Drift {
		t.Fatalf("detail %+v", det)
	}
}

// result commits a cmd.result record for id as the device would send it.
func result(t *testing.T, st store.Store, dev string, seq uint64, res wire.CommandResult) {
	t.Helper()
	body := wire.Encode(res)
	if _, err := st.CommitBatches(context.Background(), []store.Batch{{DeviceID: dev, Epoch: "e1", RecvTS: time.Now(),
		Records: []store.IncomingRecord{{Record: wire.Record{Seq: seq, Kind: wire.KindCmdResult, Class: wire.Business, TS: 1, Body: body},
			Effect: store.Effect{Command: &res}}}}}); err != nil {
		t.Error(err)
	}
}

func TestCommandLongPoll(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	dev := e.enroll(t, "sz-a").DeviceID
	var c fleet.Command
	e.do(t, "POST", p+"/devices/"+dev+"/commands", opsTok, api.CreateCommand{Name: "reboot"}, 202, &c)

	t.Run("returns after wait when not terminal", func(t *testing.T) {
		start := time.Now()
		var got fleet.Command
		e.do(t, "GET", p+"/commands/"+c.ID+"?wait=300ms", opsTok, nil, 200, &got)
		if el := time.Since(start); el < 300*time.Millisecond || got.State != wire.CmdQueued {
			t.Fatalf("returned %s after %v, want queued after 300ms", got.State, el)
		}
	})
	t.Run("wait=0 returns at once", func(t *testing.T) {
		var got fleet.Command
		e.do(t, "GET", p+"/commands/"+c.ID+"?wait=0s", opsTok, nil, 200, &got)
		if got.State != wire.CmdQueued {
			t.Fatalf("state %s", got.State)
		}
	})
	t.Run("honours the request context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+p+"/commands/"+c.ID+"?wait=60s", nil)
			req.Header.Set("Authorization", "Bearer "+opsTok)
			res, err := e.srv.Client().Do(req)
			if err == nil {
				res.Body.Close()
			}
			errc <- err
		}()
		deadline := time.Now().Add(wait)
		for e.inflight.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("request never reached the handler")
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
		if err := <-errc; err == nil {
			t.Fatal("cancelled request succeeded")
		}
		for e.inflight.Load() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("handler still waiting after its request was cancelled")
			}
			time.Sleep(time.Millisecond)
		}
	})
	t.Run("returns as soon as terminal", func(t *testing.T) {
		start := time.Now()
		done := make(chan fleet.Command, 1)
		go func() {
			var got fleet.Command
			e.do(t, "GET", p+"/commands/"+c.ID+"?wait=60s", opsTok, nil, 200, &got)
			done <- got
		}()
		deadline := time.Now().Add(wait)
		for e.inflight.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("request never reached the handler")
			}
			time.Sleep(time.Millisecond)
		}
		result(t, e.st, dev, 1, wire.CommandResult{ID: c.ID, State: wire.CmdAccepted}) // not terminal: keeps waiting
		result(t, e.st, dev, 2, wire.CommandResult{ID: c.ID, State: wire.CmdSucceeded, Output: json.RawMessage(`{"ok":true}`)})
		select {
		case got := <-done:
			if got.State != wire.CmdSucceeded || string(got.Output) != `{"ok":true}` {
				t.Fatalf("long poll returned %+v", got)
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("long poll took %v", el)
			}
		case <-time.After(wait):
			t.Fatal("long poll did not return when the command became terminal")
		}
		// A terminal command is returned at once, whatever the wait.
		start = time.Now()
		e.do(t, "GET", p+"/commands/"+c.ID+"?wait=60s", opsTok, nil, 200, nil)
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("terminal command held for %v", el)
		}
	})
}

// TestLongPollOutlastsServerTimeouts: a long poll holds its request past the HTTP server's read
// and write timeouts, which are shorter than the longest wait (the read timeout would cancel the
// request's context, the write timeout cut the answer).
func TestLongPollOutlastsServerTimeouts(t *testing.T) {
	e := newEnv(t, func(s *http.Server) { s.ReadTimeout, s.WriteTimeout = 100*time.Millisecond, 100*time.Millisecond })
	e.site(t, "sz-a")
	dev := e.enroll(t, "sz-a").DeviceID
	var c fleet.Command
	e.do(t, "POST", p+"/devices/"+dev+"/commands", opsTok, api.CreateCommand{Name: "reboot"}, 202, &c)
	var got fleet.Command
	e.do(t, "GET", p+"/commands/"+c.ID+"?wait=500ms", opsTok, nil, 200, &got)
	if got.ID != c.ID || got.State != wire.CmdQueued {
		t.Fatalf("long poll returned %+v", got)
	}
}
