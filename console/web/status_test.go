package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

func TestAssess(t *testing.T) {
	periph := `{"devices":[{"id":"receipt0","class":"receipt-printer","connected":true,"status":"%s","reasons":[%s]}]}`
	hb := func(free, total, outbox int64) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"diskFreeBytes":%d,"diskTotalBytes":%d,"outboxDepth":%d,"memUsedBytes":1,"memTotalBytes":4}`, free, total, outbox))
	}
	for _, tc := range []struct {
		name  string
		d     fleet.Device
		level Level
		codes []string
	}{
		{"fine", fleet.Device{Online: true, Health: hb(50<<30, 64<<30, 0), Peripherals: json.RawMessage(fmt.Sprintf(periph, "ok", ""))}, LevelOK, nil},
		{"paper out", fleet.Device{Online: true, Peripherals: json.RawMessage(fmt.Sprintf(periph, "fault", `"paper-out","cover-open"`))}, LevelFault, []string{"paper-out", "cover-open"}},
		{"paper low", fleet.Device{Online: true, Peripherals: json.RawMessage(fmt.Sprintf(periph, "degraded", `"paper-near-end"`))}, LevelDegraded, []string{"paper-near-end"}},
		{"fault without reasons", fleet.Device{Online: true, Peripherals: json.RawMessage(fmt.Sprintf(periph, "fault", ""))}, LevelFault, []string{"status-fault"}},
		{"unplugged", fleet.Device{Online: true, Peripherals: json.RawMessage(`{"devices":[{"id":"x","class":"qr-scanner","connected":false,"status":"unknown","since":1}]}`)}, LevelFault, []string{"disconnected"}},
		{"disk low by share", fleet.Device{Online: true, Health: hb(5<<30, 64<<30, 0)}, LevelDegraded, []string{"disk-low"}},
		{"disk low by bytes", fleet.Device{Online: true, Health: hb(512<<20, 8<<30, 0)}, LevelDegraded, []string{"disk-low"}},
		{"backlog", fleet.Device{Online: true, Health: hb(50<<30, 64<<30, 5000)}, LevelDegraded, []string{"outbox-backlog"}},
		{"certificate expiring", fleet.Device{Online: true, CertExpiry: time.Now().Add(72 * time.Hour)}, LevelDegraded, []string{"cert-expiring"}},
		{"certificate fine", fleet.Device{Online: true, CertExpiry: time.Now().Add(40 * 24 * time.Hour)}, LevelOK, nil},
		{"offline with stale fault", fleet.Device{Peripherals: json.RawMessage(fmt.Sprintf(periph, "fault", `"paper-out"`))}, LevelOffline, []string{"offline", "paper-out"}},
		{"revoked", fleet.Device{Revoked: true, Peripherals: json.RawMessage(fmt.Sprintf(periph, "fault", `"paper-out"`))}, LevelRevoked, []string{"revoked"}},
		{"unreadable bodies", fleet.Device{Online: true, Health: json.RawMessage(`[1,2]`), Peripherals: json.RawMessage(`42`)}, LevelOK, nil},
	} {
		a := assess(tc.d, time.Now())
		var codes []string
		for _, r := range a.Reasons {
			codes = append(codes, r.Code)
		}
		if a.Level != tc.level || !slices.Equal(codes, tc.codes) {
			t.Errorf("%s: level %v reasons %v, want %v %v", tc.name, a.Level, codes, tc.level, tc.codes)
		}
	}
}

func TestSortProblemsFirst(t *testing.T) {
	rows := []row{
		{Device: fleet.Device{ID: "a"}, Assessment: Assessment{Level: LevelRevoked}},
		{Device: fleet.Device{ID: "b"}, Assessment: Assessment{Level: LevelOK}},
		{Device: fleet.Device{ID: "c"}, Assessment: Assessment{Level: LevelDegraded}},
		{Device: fleet.Device{ID: "d"}, Assessment: Assessment{Level: LevelFault}},
		{Device: fleet.Device{ID: "e"}, Assessment: Assessment{Level: LevelOffline}},
		{Device: fleet.Device{ID: "f"}, Assessment: Assessment{Level: LevelFault}},
	}
	sortProblemsFirst(rows)
	var ids string
	for _, r := range rows {
		ids += r.ID
	}
	if ids != "edfcba" {
		t.Errorf("order %s, want edfcba", ids)
	}
}

func TestPeripherals(t *testing.T) {
	ps, err := peripherals(json.RawMessage(`{"devices":[` +
		`{"id":"r","class":"receipt-printer","connected":true,"status":"fault","reasons":["paper-out"],"consumables":[{"name":"paper","level":"empty"}],"since":1795723800000},` +
		`{"id":"q","class":"qr-scanner","connected":false,"status":"ok","since":0},` +
		`{"id":"a","class":"document-printer","connected":true,"status":"degraded","since":1}]}`))
	if err != nil || len(ps) != 3 {
		t.Fatalf("%+v %v", ps, err)
	}
	if ps[0].Level != LevelFault || !ps[0].Since.Equal(time.UnixMilli(1795723800000)) || ps[0].Consumables[0].Level != "empty" ||
		ps[1].Level != LevelFault || !ps[1].Since.IsZero() || ps[2].Level != LevelDegraded {
		t.Errorf("%+v", ps)
	}
	if ps, err := peripherals(nil); err != nil || ps != nil {
		t.Errorf("no body: %+v %v", ps, err)
	}
	// Other shapes are not guessed at: the page says why it cannot read them.
	for _, body := range []string{`42`, `{"scanner":"ok"}`, `[{"id":"r","status":"ok"}]`, `{"devices":[{"id":"r","class":"x","status":"warning"}]}`} {
		if _, err := peripherals(json.RawMessage(body)); err == nil {
			t.Errorf("%s: read as peripherals", body)
		}
	}
}

// FuzzPeripherals feeds arbitrary peripherals and heartbeat bodies, as a kiosk could send them
// through the hub, to the decoders, the assessment and the words: never a panic, and every
// reason in words.
func FuzzPeripherals(f *testing.F) {
	f.Add([]byte(`{"devices":[{"id":"receipt0","class":"receipt-printer","connected":true,"status":"fault","reasons":["paper-out"],"consumables":[{"name":"paper","level":"empty"}],"since":1795723800000}]}`),
		[]byte(`{"uptimeS":8123,"cpuPercent":12.5,"memUsedBytes":812000000,"memTotalBytes":4000000000,"diskFreeBytes":21000000000,"diskTotalBytes":64000000000,"outboxDepth":0}`))
	f.Add([]byte(`{"devices":[{"id":"q","class":"qr-scanner","connected":false,"status":"unknown","since":0}]}`), []byte(`{"cpuPercent":"high","fans":[1,2]}`))
	f.Add([]byte(`[{"since":1e300,"connected":"yes"}]`), []byte(`{"diskFreeBytes":1,"diskTotalBytes":0,"memTotalBytes":1e308}`))
	f.Add([]byte(`null`), []byte(`[]`))
	f.Add([]byte("{\"devices\":[{\"id\":\"\xff\",\"class\":\"c\",\"status\":\"ok\"}]}"), []byte(`{"outboxDepth":1e400}`))
	l := &L{Lang: "en", Loc: time.UTC, Now: time.Now()}
	f.Fuzz(func(t *testing.T, periph, hb []byte) {
		d := fleet.Device{Online: len(periph)%2 == 0, Peripherals: periph, Health: hb}
		a := assess(d, time.Now())
		for _, r := range a.Reasons {
			if l.Reason(r) == "" {
				t.Fatalf("reason %+v in no words", r)
			}
		}
		h := heartbeat(hb)
		if pct := h.DiskFreePercent(); pct < 0 || (h.OK != (h.Unreadable == "" && !isEmpty(hb))) {
			t.Fatalf("health %+v", h)
		}
	})
}

// Masking goes by field: an ID card's number is masked, a CPU percentage with many digits is not.
func TestJSONMasksIdentityFieldsOnly(t *testing.T) {
	raw := json.RawMessage(`{"host":{"cpuPercent":12.293682123456789},"id_card":{"number":"11010519491231002X","name":"张三"}}`)
	for _, s := range []string{prettyJSON(raw), compactJSON(raw, 300)} {
		if !strings.Contains(s, "12.293682123456789") || strings.Contains(s, "1949") || strings.Contains(s, "张三") || !strings.Contains(s, "110105") {
			t.Errorf("shown as %s", s)
		}
	}
}

// FuzzAcceptLanguage: any header picks a supported language or none.
func FuzzAcceptLanguage(f *testing.F) {
	for _, s := range []string{"zh-CN,zh;q=0.9,en;q=0.8", "en-US", "fr;q=0.9, en;q=0.1", "en;q=x", "en;q=2", ",,;", "*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		l, ok := acceptLanguage(h)
		if ok != (l != "") || (ok && l != "en" && l != "zh-CN") {
			t.Fatalf("%q: %q %v", h, l, ok)
		}
	})
}

// fleetHub serves n generated kiosks from memory, for benchmarks.
type fleetHub struct {
	devices []fleet.Device
	sites   []fleet.Site
}

func (h *fleetHub) ListSites(context.Context) ([]fleet.Site, error) { return h.sites, nil }
func (h *fleetHub) ListDevices(context.Context, api.DeviceQuery) ([]fleet.Device, error) {
	return h.devices, nil
}
func (h *fleetHub) Device(_ context.Context, id string) (api.DeviceDetail, error) {
	return api.DeviceDetail{Device: h.devices[0]}, nil
}
func (h *fleetHub) SendCommand(context.Context, string, api.CreateCommand) (fleet.Command, error) {
	return fleet.Command{}, nil
}
func (h *fleetHub) SetDesired(context.Context, string, json.RawMessage) (fleet.DocState, error) {
	return fleet.DocState{}, nil
}
func (h *fleetHub) Revoke(context.Context, string) (fleet.Device, error) { return fleet.Device{}, nil }

func newFleetHub(n int) *fleetHub {
	h := &fleetHub{}
	for i := range 50 {
		h.sites = append(h.sites, fleet.Site{ID: fmt.Sprintf("site-%02d", i), Name: fmt.Sprintf("第 %d 服务大厅", i), Region: fmt.Sprintf("4403%02d", i%10)})
	}
	now := time.Now()
	for i := range n {
		st := []string{`"status":"ok"`, `"status":"fault","reasons":["paper-out"]`, `"status":"degraded","reasons":["paper-near-end"]`}[i%3]
		h.devices = append(h.devices, fleet.Device{
			ID: fmt.Sprintf("k-%06d", i), SiteID: h.sites[i%50].ID, Region: h.sites[i%50].Region, Online: i%7 != 0,
			LastSeen: now, PresenceAt: now.Add(-time.Hour),
			Health:      json.RawMessage(`{"cpuPercent":12.5,"memUsedBytes":812000000,"memTotalBytes":4000000000,"diskFreeBytes":21000000000,"diskTotalBytes":64000000000,"outboxDepth":0}`),
			Peripherals: json.RawMessage(`{"devices":[{"id":"receipt0","class":"receipt-printer","connected":true,` + st + `},{"id":"idcard0","class":"id-reader","connected":true,"status":"ok"}]}`),
		})
	}
	return h
}

// BenchmarkOverview renders the overview of a 1000-kiosk fleet (a third of it faulty).
func BenchmarkOverview(b *testing.B) {
	s, err := New(Config{Hub: newFleetHub(1000)})
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range []string{"/", "/?live=1", "/devices"} {
		b.Run(strings.TrimPrefix(path, "/"), func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			for b.Loop() {
				w := httptest.NewRecorder()
				s.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code)
				}
			}
		})
	}
}
