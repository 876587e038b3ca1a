package storetest

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func testDesired(t *testing.T, s StateStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	Enroll(t, s, "sz", "k2")
	_, err := s.GetDesired(ctx, "k1")
	wantErr(t, "GetDesired before any", err, store.ErrNotFound)
	for i := 1; i <= 3; i++ {
		at := T0.Add(time.Duration(i) * time.Minute)
		d, err := s.SetDesired(ctx, "k1", json.RawMessage(`{"volume":`+string(rune('0'+i))+`}`), at)
		if err != nil || d.Version != int64(i) || d.DeviceID != "k1" || !d.UpdatedAt.Equal(at) {
			t.Fatalf("SetDesired #%d = %+v, %v", i, d, err)
		}
	}
	d, err := s.GetDesired(ctx, "k1")
	if err != nil || d.Version != 3 || string(d.Doc) != `{"volume":3}` || !d.UpdatedAt.Equal(T0.Add(3*time.Minute)) {
		t.Fatalf("GetDesired = %+v, %v", d, err)
	}
	if d, err := s.SetDesired(ctx, "k2", json.RawMessage(`{}`), T0); err != nil || d.Version != 1 {
		t.Fatalf("versions are per device: %+v, %v", d, err)
	}
	_, err = s.SetDesired(ctx, "nope", json.RawMessage(`{}`), T0)
	wantErr(t, "SetDesired unknown device", err, store.ErrNotFound)
}

// testUpdateDesired: one transaction changes many devices' documents, each from its own current
// one, with the next version; an unknown device, a document that is not JSON or a failing update
// stores nothing.
func testUpdateDesired(t *testing.T, s StateStore) {
	ctx := t.Context()
	ids := []string{"k3", "k1", "k2"}
	for _, id := range ids {
		Enroll(t, s, "sz", id)
	}
	if _, err := s.SetDesired(ctx, "k1", json.RawMessage(`{"volume":5}`), T0); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	add := func(id string, cur json.RawMessage) (json.RawMessage, error) {
		seen[id] = string(cur)
		doc := map[string]any{}
		if cur != nil {
			if err := json.Unmarshal(cur, &doc); err != nil {
				return nil, err
			}
		}
		doc["bundles"] = map[string]string{"tax": "1.0.0"}
		return json.Marshal(doc)
	}
	at := T0.Add(time.Minute)
	ds, err := s.UpdateDesired(ctx, ids, at, add)
	if err != nil || len(ds) != 3 {
		t.Fatalf("UpdateDesired = %+v, %v", ds, err)
	}
	if seen["k1"] != `{"volume":5}` || seen["k2"] != "" || seen["k3"] != "" {
		t.Fatalf("update saw %q", seen)
	}
	want := map[string]struct {
		v   int64
		doc string
	}{"k1": {2, `{"bundles":{"tax":"1.0.0"},"volume":5}`}, "k2": {1, `{"bundles":{"tax":"1.0.0"}}`}, "k3": {1, `{"bundles":{"tax":"1.0.0"}}`}}
	for i, d := range ds {
		w := want[ids[i]]
		if d.DeviceID != ids[i] || d.Version != w.v || string(d.Doc) != w.doc || !d.UpdatedAt.Equal(at) {
			t.Errorf("UpdateDesired[%d] = %+v, want %s v%d %s", i, d, ids[i], w.v, w.doc)
		}
		if got, err := s.GetDesired(ctx, ids[i]); err != nil || got.Version != w.v || string(got.Doc) != w.doc || !got.UpdatedAt.Equal(at) {
			t.Errorf("GetDesired(%s) = %+v, %v", ids[i], got, err)
		}
	}
	// Nothing of a refused batch is stored.
	boom := errors.New("boom")
	for name, tc := range map[string]struct {
		ids    []string
		update func(string, json.RawMessage) (json.RawMessage, error)
		want   error
	}{
		"unknown device": {[]string{"k1", "nope"}, add, store.ErrNotFound},
		"named twice":    {[]string{"k1", "k2", "k1"}, add, store.ErrInvalid},
		"not JSON": {ids, func(id string, cur json.RawMessage) (json.RawMessage, error) {
			if id == "k2" {
				return json.RawMessage(`{`), nil
			}
			return add(id, cur)
		}, store.ErrInvalid},
		"update fails": {ids, func(id string, cur json.RawMessage) (json.RawMessage, error) {
			if id == "k2" {
				return nil, boom
			}
			return add(id, cur)
		}, boom},
	} {
		_, err := s.UpdateDesired(ctx, tc.ids, T0.Add(time.Hour), tc.update)
		wantErr(t, "UpdateDesired, "+name, err, tc.want)
	}
	for id, w := range want {
		if got, _ := s.GetDesired(ctx, id); got.Version != w.v || string(got.Doc) != w.doc {
			t.Errorf("after refused batches, %s = %+v", id, got)
		}
	}
	if ds, err := s.UpdateDesired(ctx, nil, at, add); err != nil || len(ds) != 0 {
		t.Fatalf("UpdateDesired of none = %+v, %v", ds, err)
	}
}

func testReported(t *testing.T, s StateStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	_, err := s.GetReported(ctx, "k1")
	wantErr(t, "GetReported before any", err, store.ErrNotFound)
	rep := func(seq uint64, v int64, doc, errMsg string, at time.Time) store.Batch {
		b := NewBatch("k1", "e", seq, 1, 10)
		b.RecvTS = at
		r := wire.Reported{Version: v, Doc: json.RawMessage(doc), Error: errMsg}
		b.Records[0].Kind, b.Records[0].Body, b.Records[0].Effect.Reported = wire.KindReported, wire.Encode(r), &r
		return b
	}
	behind := func(want ...string) {
		t.Helper()
		if got, err := s.DevicesBehind(ctx); err != nil || !slices.Equal(got, want) {
			t.Fatalf("DevicesBehind = %v, %v; want %v", got, err, want)
		}
	}
	behind()
	for range 4 { // desired version 4
		if _, err := s.SetDesired(ctx, "k1", json.RawMessage(`{}`), T0); err != nil {
			t.Fatal(err)
		}
	}
	behind("k1") // nothing reported yet
	commit(t, s, rep(1, 3, `{"volume":3}`, "", T0.Add(time.Minute)))
	commit(t, s, rep(2, 2, `{"volume":2}`, "", T0.Add(2*time.Minute))) // older version: ignored
	d, err := s.GetReported(ctx, "k1")
	if err != nil || d.Version != 3 || string(d.Doc) != `{"volume":3}` || !d.UpdatedAt.Equal(T0.Add(time.Minute)) {
		t.Fatalf("GetReported = %+v, %v", d, err)
	}
	behind("k1")                                                                   // reported 3 < desired 4
	commit(t, s, rep(3, 3, `{"volume":3}`, "cannot apply", T0.Add(3*time.Minute))) // same version: updated
	d, _ = s.GetReported(ctx, "k1")
	if d.Version != 3 || d.Error != "cannot apply" || !d.UpdatedAt.Equal(T0.Add(3*time.Minute)) {
		t.Fatalf("same version report not applied: %+v", d)
	}
	behind() // version 4 refused: not sent again until it changes
	commit(t, s, rep(4, 4, `{}`, "", T0.Add(4*time.Minute)))
	behind()
}
