package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// The log tail: a log-tail command with bad args is refused before it is queued, a good one gets
// the short default TTL and is audited; GET /devices/{id}/log serves the room's lines after a
// line number, in scope, to staff only.
func TestDeviceLog(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	id := e.enroll(t, "sz-a").DeviceID

	r := e.do(t, "POST", p+"/devices/"+id+"/commands", adminTok, api.CreateCommand{Name: api.CmdLogTail, Args: json.RawMessage(`{"for":"1h"}`)}, 400, nil)
	if err := r.err(t); !strings.Contains(strings.Join(err.Fields, " "), "1s to 15m") {
		t.Errorf("a 1h tail refused with %+v", err)
	}
	var cmd fleet.Command
	e.do(t, "POST", p+"/devices/"+id+"/commands", opsTok, api.CreateCommand{Name: api.CmdLogTail, Args: json.RawMessage(`{"for":"5m"}`)}, 202, &cmd)
	if ttl := cmd.ExpiresAt.Sub(cmd.CreatedAt); ttl != api.LogTailTTL {
		t.Errorf("log-tail TTL %v, want %v", ttl, api.LogTailTTL)
	}
	var audit api.StaffActions
	e.do(t, "GET", p+"/audit?actor=ops1&limit=10", adminTok, nil, 200, &audit)
	if len(audit.Entries) == 0 || audit.Entries[0].Action != "POST /devices/{id}/commands" || !strings.Contains(audit.Entries[0].Target, id) {
		t.Errorf("log-tail request not audited: %+v", audit.Entries)
	}

	var lg api.DeviceLog
	e.do(t, "GET", p+"/devices/"+id+"/log", opsTok, nil, 200, &lg)
	if lg.DeviceID != id || lg.Active || lg.Lines == nil || len(lg.Lines) != 0 {
		t.Fatalf("log before a tail: %+v", lg)
	}
	batch := wire.LogBatch{V: wire.Version, Tail: cmd.ID, LeftMs: 300_000, Lines: []wire.LogLine{
		{TS: 1, Level: "INFO", Text: "first"}, {TS: 2, Level: "WARN", Text: "call 13812345678"}}}
	e.logs.Receive(id, wire.Topic(id, wire.ChLog), wire.Encode(batch))
	e.do(t, "GET", p+"/devices/"+id+"/log", opsTok, nil, 200, &lg)
	if !lg.Active || lg.Tail != cmd.ID || lg.Next != 2 || len(lg.Lines) != 2 || lg.Lines[1].Text != "call [phone]" ||
		!lg.Until.Equal(e.clock.Now().Add(5*time.Minute)) {
		t.Fatalf("log: %+v", lg)
	}
	e.do(t, "GET", p+"/devices/"+id+"/log?after=1", opsTok, nil, 200, &lg)
	if len(lg.Lines) != 1 || lg.Lines[0].Text != "call [phone]" {
		t.Fatalf("after=1: %+v", lg.Lines)
	}
	e.do(t, "GET", p+"/devices/"+id+"/log?after=x", opsTok, nil, 400, nil)
	e.do(t, "GET", p+"/devices/nope/log", opsTok, nil, 404, nil)
	e.do(t, "GET", p+"/devices/"+id+"/log", reviewerTok, nil, 403, nil)
}
