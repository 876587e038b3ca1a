package httpapi_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func TestDesiredAndState(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	dev := e.enroll(t, "sz-a").DeviceID
	var st api.State
	if r := e.do(t, "GET", p+"/devices/"+dev+"/state", opsTok, nil, 200, &st); string(bytes.TrimSpace(r.body)) != `{"drift":false}` {
		t.Fatalf("state without documents: %s", r.body)
	}
	var ds fleet.DocState
	e.do(t, "PUT", p+"/devices/"+dev+"/desired", opsTok, `{"doc":{"logLevel":"info"}}`, 200, &ds)
	if ds.Version != 1 || ds.DeviceID != dev || string(ds.Doc) != `{"logLevel":"info"}` || !ds.UpdatedAt.Equal(e.clock.Now()) {
		t.Fatalf("desired %+v", ds)
	}
	e.do(t, "PUT", p+"/devices/"+dev+"/desired", opsTok, `{"doc":{"logLevel":"debug"}}`, 200, &ds)
	if ds.Version != 2 {
		t.Fatalf("second desired version %d", ds.Version)
	}
	if _, desired := e.disp.calls(); !slices.Equal(desired, []string{dev, dev}) {
		t.Fatalf("PushDesired calls %v", desired)
	}
	e.do(t, "GET", p+"/devices/"+dev+"/state", opsTok, nil, 200, &st)
	if st.Desired == nil || st.Desired.Version != 2 || st.Reported != nil || !st.Drift {
		t.Fatalf("state %+v, want drift (nothing reported)", st)
	}
	report := func(seq uint64, rep wire.Reported) {
		if _, err := e.st.CommitBatches(t.Context(), []store.Batch{{DeviceID: dev, Epoch: "e1", RecvTS: e.clock.Now(),
			Records: []store.IncomingRecord{{Record: wire.Record{Seq: seq, Kind: wire.KindReported, Class: wire.Business, TS: 1,
				Body: wire.Encode(rep)}, Effect: store.Effect{Reported: &rep}}}}}); err != nil {
			t.Fatal(err)
		}
	}
	report(1, wire.Reported{Version: 2, Doc: json.RawMessage(`{"logLevel":"debug"}`), Error: "printer.profile unknown"})
	e.do(t, "GET", p+"/devices/"+dev+"/state", opsTok, nil, 200, &st)
	if st.Reported == nil || st.Reported.Version != 2 || !st.Drift {
		t.Fatalf("state %+v, want drift (reported an error)", st)
	}
	report(2, wire.Reported{Version: 2, Doc: json.RawMessage(`{"logLevel":"debug"}`)})
	var det api.DeviceDetail
	e.do(t, "GET", p+"/devices/"+dev, opsTok, nil, 200, &det)
	if det.Drift || det.Desired == nil || det.Reported == nil || det.Reported.Error != "" {
		t.Fatalf("detail %+v, want in sync", det)
	}
}

// TestDesiredKeepsRolloutKeys: a document set by hand without "bundles" and "agent" keeps the
// ones a rollout gave the kiosk; one that names them replaces them.
func TestDesiredKeepsRolloutKeys(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	dev := e.enroll(t, "sz-a").DeviceID
	if _, err := e.st.SetDesired(t.Context(), dev, json.RawMessage(`{"bundles":{"tax-print":"1.4.0"},"agent":"0.2.0","logLevel":"info"}`), e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	var got fleet.DocState
	e.do(t, "PUT", p+"/devices/"+dev+"/desired", opsTok, api.SetDesired{Doc: json.RawMessage(`{"logLevel":"debug"}`)}, 200, &got)
	var doc map[string]json.RawMessage
	json.Unmarshal(got.Doc, &doc)
	if string(doc["logLevel"]) != `"debug"` || string(doc["bundles"]) != `{"tax-print":"1.4.0"}` || string(doc["agent"]) != `"0.2.0"` {
		t.Fatalf("doc = %s", got.Doc)
	}
	e.do(t, "PUT", p+"/devices/"+dev+"/desired", opsTok, api.SetDesired{Doc: json.RawMessage(`{"bundles":{}}`)}, 200, &got)
	if string(got.Doc) != `{"agent":"0.2.0","bundles":{}}` {
		t.Fatalf("doc = %s", got.Doc)
	}
}
