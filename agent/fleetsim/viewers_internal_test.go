package fleetsim

import (
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// The viewers' run against a real hub, killed and restarted: e2e/viewers_test.go. Here: what
// counts as having a kiosk's final presence, on made-up records of what viewers received.
func TestViewersUpToDate(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	ns := func(n int) int64 { return ms(n).UnixNano() }
	// The hub lost at 1000 ms; k1 online again at 2000, k2 at 3000 (the storm's last change);
	// k3 changed before the storm (not in it).
	devs := []fleet.Device{
		{ID: "k1", Online: true, PresenceAt: ms(2000)},
		{ID: "k2", Online: true, PresenceAt: ms(3000)},
		{ID: "k3", Online: false, PresenceAt: ms(500)},
	}
	ids := &kioskIndex{m: map[string]int{}}
	// v is a viewer whose stream broke at brokeAt, that read everything again at rereads and
	// received notices, each 10 ms after its change.
	v := func(brokeAt int, rereads []int, notices ...api.Notice) *viewer {
		x := &viewer{ids: ids, opens: 2, brokeAt: ns(brokeAt)}
		for _, n := range notices {
			x.receive(n)
			x.kiosks[ids.index(n.DeviceID)].recv = n.At.Add(10 * time.Millisecond).UnixNano()
		}
		x.rereads, x.lags = nil, nil
		for _, r := range rereads {
			x.rereads = append(x.rereads, ns(r))
		}
		return x
	}
	on := func(id string, at int) api.Notice {
		return api.Notice{Kind: api.NoticePresence, DeviceID: id, Online: true, At: ms(at)}
	}
	for _, tc := range []struct {
		name string
		v    *viewer
		want int // ms after the last change (3000); -1: not up to date
	}{
		{"both changes' notices", v(1001, []int{1500}, on("k1", 2000), on("k2", 3000)), 10},
		{"reopened after every change", v(1001, []int{3500}), 500},
		{"reopened after k1's change, k2's notice later", v(1001, []int{2500}, on("k2", 3000)), 10},
		{"only an earlier change of k2", v(1001, []int{1500}, on("k1", 2000), on("k2", 2800)), -1},
		{"a later change of k2 (it went away again)", v(1001, []int{1500}, on("k1", 2000), on("k2", 3100)), 110},
		{"only notices from before the break", v(1001, []int{900}, on("k1", 800), on("k2", 800)), -1},
		{"a resync after the last change covers a lost notice", v(1001, []int{1500, 3200}, on("k1", 2000), on("k2", 2800)), 200},
		{"the first reading after the change", v(1001, []int{1500, 3100, 3300}, on("k1", 2000)), 100},
	} {
		at, ok := tc.v.upToDate(devs[:2])
		switch {
		case tc.want < 0 && ok:
			t.Errorf("%s: up to date at %s, want not", tc.name, time.Unix(0, at).Sub(ms(3000)))
		case tc.want >= 0 && (!ok || at != ns(3000+tc.want)):
			t.Errorf("%s: up to date %v at %s, want %d ms", tc.name, ok, time.Unix(0, at).Sub(ms(3000)), tc.want)
		}
	}

	// summarize: the storm is what follows the first broken stream; the kiosks in it, those the
	// hub changed since.
	a, b := v(1001, []int{3500}), v(1200, []int{1500}, on("k1", 2000), on("k2", 2800))
	a.lags, a.stormFrom, a.updates = []time.Duration{time.Millisecond, 3 * time.Millisecond}, 1, 2
	b.lags, b.stormFrom, b.updates = []time.Duration{2 * time.Millisecond}, 0, 3
	res := summarize([]*viewer{a, b}, ids, devs, ms(0))
	if !res.HubLostAt.Equal(ms(1001)) || res.StormKiosks != 2 || res.NotUpToDate != 1 || res.UpToDateMaxMs != 500 ||
		res.Updates != 5 || res.StormUpdates != 2 || res.LagMaxMs != 3 || res.StormLagP50Ms != 2 || res.Reconnects != 2 {
		t.Errorf("summary %+v", res)
	}
}

func TestViewersConfigValidate(t *testing.T) {
	err := ViewersConfig{Viewers: 0, MinBackoff: 2 * time.Second, MaxBackoff: time.Second}.Validate()
	for _, want := range []string{"hub", "token", "viewers", "backoff"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
	if err := (ViewersConfig{HubURL: "https://hub.kiosk.test", Token: "t", Viewers: 1}).Validate(); err != nil {
		t.Errorf("good config refused: %v", err)
	}
}
