package ingest_test

import (
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/ingest"
	"github.com/kioskfleet/kioskfleet/hub/ingest/ingesttest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// FuzzUp feeds arbitrary up payloads (and through them arbitrary cmd.result and state.reported
// bodies) through the whole ingest path into a real store. A payload the wire decoder refuses is
// counted and never committed; one it accepts is committed (or refused by the store) and whatever
// is acked equals the stored watermark. Nothing panics.
func FuzzUp(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"epoch":"e1","records":[{"seq":1,"kind":"heartbeat","class":"t","ts":5,"body":{"uptimeS":1}}]}`,
		`{"v":1,"epoch":"e1","records":[{"seq":2,"kind":"cmd.result","class":"b","ts":5,"body":{"id":"c-1","state":"succeeded","output":{}}}]}`,
		`{"v":1,"epoch":"e1","records":[{"seq":3,"kind":"cmd.result","class":"b","ts":5,"body":{"id":"c-1","state":"queued"}}]}`,
		`{"v":1,"epoch":"e1","records":[{"seq":4,"kind":"state.reported","class":"b","ts":5,"body":{"version":3,"doc":{"a":1}}}]}`,
		`{"v":1,"epoch":"e1","records":[{"seq":5,"kind":"state.reported","class":"b","ts":5,"body":{"version":-1,"doc":[]}}]}`,
		`{"v":1,"epoch":"e1","records":[{"seq":7,"kind":"peripherals","class":"t","ts":5,"body":{"devices":[]}}]}`,
		`{"v":1,"epoch":"e2","records":[{"seq":9223372036854775808,"kind":"x","class":"t","ts":5,"body":1}]}`,
		`{"v":1,"epoch":"e1","records":[{"seq":6,"kind":"alert","class":"b","ts":-1,"body":"x"},{"seq":8,"kind":"alert","class":"b","ts":1,"body":null}]}`,
		`{"v":2}`, `[]`, `{"v":1e400}`, "\x00", ``,
	} {
		f.Add([]byte(s))
	}
	e := newEnv(f, ingest.Config{}, "k-001")
	if err := e.st.CreateCommand(f.Context(), commandFixture("c-1", "k-001", e.clock.Now())); err != nil {
		f.Fatal(err)
	}
	topic := wire.Topic("k-001", wire.ChUp)
	f.Fuzz(func(t *testing.T, payload []byte) {
		before, calls := e.g.Stats(), len(e.gate.Calls())
		ackTopic := wire.Topic("k-001", wire.ChAck)
		acks := len(e.bus.Published(ackTopic))
		e.bus.Inject("k-001", topic, payload)
		b, err := wire.DecodeBatch(payload)
		if err != nil {
			if s := e.g.Stats(); s.Rejected != before.Rejected+1 || len(e.gate.Calls()) != calls {
				t.Fatalf("refused payload (%v): stats %+v -> %+v", err, before, s)
			}
			return
		}
		deadline := time.Now().Add(wait)
		for len(e.gate.Results()) == calls {
			if time.Now().After(deadline) {
				t.Fatal("accepted batch never committed")
			}
			time.Sleep(100 * time.Microsecond)
		}
		if err := e.gate.Results()[calls]; err != nil {
			if n := len(e.bus.Published(ackTopic)); n != acks {
				t.Fatalf("batch the store refused (%v) was acked", err)
			}
			return
		}
		ms := e.bus.Wait(t, ackTopic, wait, func(ms []ingesttest.Message) bool { return len(ms) > acks })
		up, err := e.st.Watermark(t.Context(), "k-001", b.Epoch)
		if err != nil {
			t.Fatal(err)
		}
		last, err := wire.DecodeAck(ms[len(ms)-1].Payload)
		if err != nil || last.Epoch != b.Epoch || last.UpTo != up {
			t.Fatalf("last ack %+v (%v), want %s up to the stored watermark %d", last, err, b.Epoch, up)
		}
	})
}
