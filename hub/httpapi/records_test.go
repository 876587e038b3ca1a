package httpapi_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func TestRecordsPaging(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	dev, other := e.enroll(t, "sz-a").DeviceID, e.enroll(t, "sz-a").DeviceID
	var bs []store.Batch
	for i := range 5 {
		b := storetest.NewBatch(dev, "e1", uint64(i*50+1), 50, 100)
		for j := range b.Records {
			if j%10 == 0 {
				b.Records[j].Kind = wire.KindAlert
			}
		}
		bs = append(bs, b, storetest.NewBatch(other, "e1", uint64(i*10+1), 10, 100))
	}
	bs = append(bs, storetest.NewBatch(dev, "e2", 1, 5, 100)) // the kiosk's disk was replaced
	if _, err := e.st.CommitBatches(t.Context(), bs); err != nil {
		t.Fatal(err)
	}

	page := func(q string) api.Records {
		var rs api.Records
		e.do(t, "GET", p+"/devices/"+dev+"/records"+q, opsTok, nil, 200, &rs)
		return rs
	}
	var all []fleet.Record
	after := int64(0)
	for pages := 0; ; pages++ {
		rs := page(fmt.Sprintf("?after=%d&limit=100", after))
		all = append(all, rs.Records...)
		if len(rs.Records) > 0 && rs.Next != rs.Records[len(rs.Records)-1].ID {
			t.Fatalf("next %d, want the last id %d", rs.Next, rs.Records[len(rs.Records)-1].ID)
		}
		if len(rs.Records) < 100 {
			if rs.Next != after && len(rs.Records) == 0 {
				t.Fatalf("empty page: next %d, want after (%d)", rs.Next, after)
			}
			break
		}
		after = rs.Next
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if len(all) != 255 {
		t.Fatalf("paged %d records, want 255", len(all))
	}
	for i, r := range all {
		wantEpoch, wantSeq := "e1", uint64(i+1)
		if i >= 250 {
			wantEpoch, wantSeq = "e2", uint64(i-249)
		}
		if r.DeviceID != dev || r.Epoch != wantEpoch || r.Seq != wantSeq {
			t.Fatalf("record %d is %s/%s/%d, want %s/%d", i, r.DeviceID, r.Epoch, r.Seq, wantEpoch, wantSeq)
		}
	}
	last := page(fmt.Sprintf("?after=%d", all[len(all)-1].ID))
	if len(last.Records) != 0 || last.Next != all[len(all)-1].ID {
		t.Fatalf("after the end: %+v", last)
	}
	if r := e.do(t, "GET", p+"/devices/"+dev+"/records?after="+fmt.Sprint(all[len(all)-1].ID), opsTok, nil, 200, nil); !strings.Contains(string(r.body), `"records":[]`) {
		t.Fatalf("empty page %s", r.body)
	}
	alerts := page("?kind=alert&limit=1000")
	if len(alerts.Records) != 25 {
		t.Fatalf("%d alerts, want 25", len(alerts.Records))
	}
	if def := page(""); len(def.Records) != 100 {
		t.Fatalf("default page of %d records, want 100", len(def.Records))
	}
	// A record id of another device is not a cursor of this one.
	var ors api.Records
	e.do(t, "GET", p+"/devices/"+other+"/records?limit=1", opsTok, nil, 200, &ors)
	er := e.do(t, "GET", p+"/devices/"+dev+"/records?after="+fmt.Sprint(ors.Records[0].ID), opsTok, nil, 400, nil).err(t)
	if len(er.Fields) != 1 || !strings.HasPrefix(er.Fields[0], "after: ") {
		t.Fatalf("foreign cursor: %+v", er)
	}
}
