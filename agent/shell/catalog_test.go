package shell_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/kiosklogin"
	"github.com/kioskfleet/kioskfleet/agent/localapi"
	"github.com/kioskfleet/kioskfleet/agent/shell"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// listing is the hub's kiosk channel as the test sets it, and what the kiosk's peripherals are.
type listing struct {
	mu     sync.Mutex
	cat    api.ChannelCatalog
	err    error
	periph wire.Peripherals
	reads  atomic.Int64 // times the shell read the channel
}

func (l *listing) listed(context.Context) (api.ChannelCatalog, error) {
	l.reads.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cat, l.err
}

func (l *listing) peripherals() wire.Peripherals {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.periph
}

func (l *listing) set(f func(l *listing)) { l.mu.Lock(); f(l); l.mu.Unlock() }

func services(t *testing.T, k *kiosk) (map[string]shell.Service, string) {
	t.Helper()
	code, b, _ := k.do(t, "GET", "/shell/api/services", nil)
	var out struct {
		Services []shell.Service `json:"services"`
		Source   string          `json:"source"`
	}
	if err := json.Unmarshal(b, &out); code != 200 || err != nil {
		t.Fatalf("services: %d %s", code, b)
	}
	m := map[string]shell.Service{}
	for _, s := range out.Services {
		m[s.ID] = s
	}
	return m, out.Source
}

// The home screen offers the hub's kiosk apps: each only while the peripherals it requires work
// here, withheld with the reason when one is unplugged or faulted and back once fixed; a kiosk
// bundle only once installed, opening where the agent serves it; a web link at its URL. When the
// hub cannot be read the last list stays.
func TestAppCatalogGatedByPeripherals(t *testing.T) {
	printer := wire.Peripheral{ID: "receipt0", Class: "receipt-printer", Connected: true, Status: wire.PeripheralOK}
	l := &listing{periph: wire.Peripherals{Devices: []wire.Peripheral{printer}}, cat: api.ChannelCatalog{Channel: "kiosk", Generation: 7, Apps: []api.CatalogEntry{
		{App: "tax-print", Name: "完税证明打印", Kind: api.KindKioskBundle, Version: "1.0.0", Peripherals: []string{"receipt-printer"}},
		{App: "tax-web", Name: "个税查询", Kind: api.KindWebLink, Version: "2.0.0", Entry: "https://etax.example.gov.cn/", Guide: &api.GuideRef{ID: "g-tax", Version: 3}},
		{App: "id-check", Name: "身份核验", Kind: api.KindWebLink, Version: "1.0.0", Entry: "https://id.example.gov.cn/", Peripherals: []string{"id-reader"}},
		{App: "new-app", Name: "新应用", Kind: api.KindKioskBundle, Version: "0.1.0"},
	}}}
	installed := map[string]string{"tax-print": "http://tax-print.localhost:9000/"}
	var guideReads sync.Map
	cat := &shell.AppCatalog{Listed: l.listed, Peripherals: l.peripherals, Installed: func(app string) string { return installed[app] },
		Every: 20 * time.Millisecond, Guide: func(_ context.Context, id string, v int64) (api.PublishedGuide, error) {
			n, _ := guideReads.LoadOrStore(id, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
			return api.PublishedGuide{ID: id, Version: v, DepartmentName: "税务局", Doc: api.GuideDoc{Title: "个税查询",
				Materials: []api.Material{{Name: "身份证", Form: api.FormOriginal, Copies: 1, Required: true}},
				Steps:     []api.Step{{Title: "登录"}, {Title: "查询"}}, TimeLimit: api.TimeLimit{LegalDays: 5, PromisedDays: 0}}}, nil
		}}
	k := newKiosk(t, time.Minute, func(c *shell.Config) { c.Catalog = cat })
	waitUntil(t, "the catalog read", func() bool { return strings.Contains(cat.Source(), "generation 7") })

	svcs, src := services(t, k)
	if src != "hub catalog generation 7" || !svcs["print"].Available || !svcs["guide"].Available {
		t.Fatalf("builtin services kept: %s %+v", src, svcs)
	}
	want := map[string]struct {
		available bool
		reason    string
		url       string
	}{
		"tax-print": {true, "", "http://tax-print.localhost:9000/"},
		"tax-web":   {true, "", "https://etax.example.gov.cn/"},
		"id-check":  {false, shell.ReasonPeripheral, ""},
		"new-app":   {false, shell.ReasonNotInstalled, ""},
	}
	for id, w := range want {
		s := svcs[id]
		if s.App == nil || s.Available != w.available || s.Reason != w.reason || s.App.URL != w.url {
			t.Errorf("%s: %+v (app %+v), want %+v", id, s, s.App, w)
		}
	}
	if d := svcs["id-check"].Detail; d != "no id-reader" {
		t.Errorf("id-check detail %q", d)
	}

	// The guide screen shows the listed apps' published guides (read once: versions never change).
	var gs struct {
		Demo   bool              `json:"demo"`
		Guides []shell.GuideCard `json:"guides"`
	}
	if code, b, _ := k.do(t, "GET", "/shell/api/guides", nil); code != 200 || json.Unmarshal(b, &gs) != nil || gs.Demo || len(gs.Guides) != 1 ||
		gs.Guides[0].Title != "个税查询" || !strings.Contains(strings.Join(gs.Guides[0].Body, "|"), "申请材料：身份证（原件 1 份）|办理流程：1. 登录|办理流程：2. 查询") ||
		!strings.Contains(strings.Join(gs.Guides[0].BodyEn, "|"), "Fees: free of charge") {
		t.Fatalf("guides: %d %s", code, b)
	}
	n := l.reads.Load()
	waitUntil(t, "three more refreshes", func() bool { return l.reads.Load() >= n+3 })
	if n, _ := guideReads.Load("g-tax"); n.(*atomic.Int64).Load() != 1 {
		t.Fatalf("guide read %d times", n.(*atomic.Int64).Load())
	}

	// Unplugged: withheld at the next look, with why; plugged back: offered again.
	l.set(func(l *listing) {
		l.periph.Devices[0].Connected, l.periph.Devices[0].Status, l.periph.Devices[0].Reasons = false, wire.PeripheralFault, []string{"disconnected"}
	})
	svcs, _ = services(t, k)
	if s := svcs["tax-print"]; s.Available || s.Reason != shell.ReasonPeripheral || !strings.Contains(s.Detail, "receipt0 disconnected") || s.App.URL != "" {
		t.Fatalf("printer unplugged: %+v", s)
	}
	if !svcs["tax-web"].Available {
		t.Fatal("an app without peripherals was withheld")
	}
	l.set(func(l *listing) {
		l.periph.Devices[0].Connected, l.periph.Devices[0].Status = true, wire.PeripheralFault
	})
	if svcs, _ = services(t, k); svcs["tax-print"].Available || !strings.Contains(svcs["tax-print"].Detail, "fault") {
		t.Fatalf("printer faulted: %+v", svcs["tax-print"])
	}
	l.set(func(l *listing) { l.periph.Devices[0] = printer })
	if svcs, _ = services(t, k); !svcs["tax-print"].Available {
		t.Fatalf("printer fixed: %+v", svcs["tax-print"])
	}

	// The hub unreachable: the last list stays, and the source says so.
	l.set(func(l *listing) { l.err, l.cat = errors.New("hub unreachable"), api.ChannelCatalog{} })
	waitUntil(t, "a failed read", func() bool { return strings.Contains(cat.Source(), "last read failed") })
	if svcs, _ = services(t, k); !svcs["tax-web"].Available {
		t.Fatalf("offline: %+v", svcs)
	}
	// Delisted at the hub: gone.
	l.set(func(l *listing) {
		l.err, l.cat = nil, api.ChannelCatalog{Channel: "kiosk", Generation: 8, Apps: []api.CatalogEntry{{App: "tax-web", Name: "个税查询", Kind: api.KindWebLink, Entry: "https://etax.example.gov.cn/"}}}
	})
	waitUntil(t, "generation 8", func() bool { return cat.Source() == "hub catalog generation 8" })
	if svcs, _ = services(t, k); svcs["tax-print"].ID != "" || !svcs["tax-web"].Available {
		t.Fatalf("after delisting: %+v", svcs)
	}
}

// Hold waits for the citizen's session to end, then refuses new sessions (guest and card login,
// whose hub token is revoked at once) until released.
func TestHoldBetweenSessions(t *testing.T) {
	k := newKiosk(t, time.Minute)
	login(t, k, "at-1")
	held := make(chan func(), 1)
	go func() {
		release, err := k.s.Hold(context.Background())
		if err != nil {
			t.Error(err)
		}
		held <- release
	}()
	select {
	case <-held:
		t.Fatal("held during a citizen's session")
	case <-time.After(100 * time.Millisecond):
	}
	if code, b, _ := k.do(t, "POST", "/shell/api/session/end", nil); code != 200 {
		t.Fatalf("logout: %d %s", code, b)
	}
	var release func()
	select {
	case release = <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("not held once the session ended")
	}
	if !k.state(t).Updating {
		t.Fatal("state does not say updating")
	}
	if code, b, _ := k.do(t, "POST", "/shell/api/session/guest", nil); code != 503 || !strings.Contains(string(b), "updating") {
		t.Fatalf("guest during the hold: %d %s", code, b)
	}
	a := k.s.Authenticator(localapi.AuthenticatorFunc(func(context.Context, wire.IDCard) (kiosklogin.Session, error) {
		return kiosklogin.Session{AccessToken: "at-2", ExpiresIn: time.Minute}, nil
	}))
	if _, err := a.LoginIDCard(context.Background(), wire.IDCard{Number: []byte("11010519491231002X")}); !errors.Is(err, shell.ErrUpdating) {
		t.Fatalf("card login during the hold: %v", err)
	}
	if r := k.hub.revocations(); len(r) != 2 || r[1] != "at-2" {
		t.Fatalf("revoked %v, want at-1 (logout) and at-2 (refused)", r)
	}
	release()
	release() // idempotent
	if code, b, _ := k.do(t, "POST", "/shell/api/session/guest", nil); code != 200 || k.state(t).Updating {
		t.Fatalf("guest after the hold: %d %s", code, b)
	}
	// A hold waiting for a session gives up with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := k.s.Hold(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hold with a session and a deadline: %v", err)
	}
}
