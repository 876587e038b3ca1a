package events

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

var (
	recv   = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	secret = bytes.Repeat([]byte{9}, 32)
	web    = Origin{ClientID: "web-portal", Channel: store.ChannelWeb, Account: "c_alice"}
)

// canary is an ID number of the GB 11643 annex: it must never be stored.
const canary = "11010519491231002X"

func newRoom(t testing.TB, mod ...func(*Config)) *Events {
	t.Helper()
	cfg := Config{Secret: secret, Now: func() time.Time { return recv }}
	for _, m := range mod {
		m(&cfg)
	}
	ev, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// good returns a valid event as JSON with fields changed by mod.
func good(mod func(m map[string]any)) json.RawMessage {
	m := map[string]any{"v": 1, "id": "evt-00000001", "type": "view", "ts": recv.Add(-time.Minute).UnixMilli(),
		"session": "s1", "service": "hukou.transfer", "region": "440305", "props": map[string]string{"page": "guide"}}
	if mod != nil {
		mod(m)
	}
	b, _ := json.Marshal(m)
	return b
}

func TestDecodeValid(t *testing.T) {
	ev := newRoom(t)
	e, f := ev.Decode(web, good(nil), recv)
	if f != nil {
		t.Fatal(f)
	}
	if e.ID != "evt-00000001" || e.Channel != store.ChannelWeb || e.ClientID != "web-portal" || e.Service != "hukou.transfer" ||
		e.Region != "440305" || !e.DeviceTS.Equal(recv.Add(-time.Minute)) || !e.RecvTS.Equal(recv) || e.Props["page"] != "guide" {
		t.Fatalf("decoded %+v", e)
	}
	if e.Pseudonym == "" || strings.Contains(e.Pseudonym, "alice") {
		t.Fatalf("pseudonym %q", e.Pseudonym)
	}
	if err := store.CheckEvents([]store.Event{e}); err != nil {
		t.Fatalf("the store refuses a decoded event: %v", err)
	}
}

// TestDecodeRefused: every malformed event is refused with the field at fault named.
func TestDecodeRefused(t *testing.T) {
	ev := newRoom(t)
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	for _, c := range []struct {
		name  string
		raw   json.RawMessage
		field string
	}{
		{"not JSON", json.RawMessage(`{"v":1,`), "event:"},
		{"unknown field", good(set("channel", "kiosk")), `event: unknown field "channel"`},
		{"version", good(set("v", 2)), "v:"},
		{"short id", good(set("id", "x")), "id:"},
		{"id characters", good(set("id", "evt 0000001/")), "id:"},
		{"type", good(set("type", "teleport")), "type:"},
		{"no ts", good(set("ts", 0)), "ts:"},
		{"future", good(set("ts", recv.Add(time.Hour).UnixMilli())), "ts:"},
		{"too old", good(set("ts", recv.Add(-200*24*time.Hour).UnixMilli())), "ts:"},
		{"service", good(set("service", "Bad Service!")), "service:"},
		{"region", good(set("region", "990000")), "region:"},
		{"region digits", good(set("region", "44030")), "region:"},
		{"sub from the web", good(set("sub", "c_alice")), "sub:"},
		{"too many props", good(set("props", func() map[string]string {
			p := map[string]string{}
			for i := range 17 {
				p[string(rune('a'+i))] = "x"
			}
			return p
		}())), "props:"},
		{"prop key", good(set("props", map[string]string{"1bad": "x"})), "props.1bad:"},
		{"long prop", good(set("props", map[string]string{"note": strings.Repeat("x", 300)})), "props.note:"},
		{"search without query", good(func(m map[string]any) { m["type"] = "search"; m["props"] = map[string]string{"results": "0"} }), "props.query:"},
		{"search results", good(func(m map[string]any) {
			m["type"] = "search"
			m["props"] = map[string]string{"query": "x", "results": "none"}
		}), "props.results:"},
		{"trailing", append(good(nil), []byte(` {}`)...), "event: trailing"},
		{"huge", good(set("pad", strings.Repeat("x", 10000))), "event: over"},
	} {
		_, f := ev.Decode(web, c.raw, recv)
		if len(f) == 0 || !strings.HasPrefix(f[0], c.field) {
			t.Errorf("%s: errors %q, want one starting %q", c.name, f, c.field)
		}
	}
	// All problems at once.
	_, f := ev.Decode(web, good(func(m map[string]any) { m["v"] = 3; m["type"] = "x"; m["region"] = "1" }), recv)
	if len(f) != 3 {
		t.Errorf("want three field errors, got %q", f)
	}
}

// TestDecodeCanary: an ID number anywhere a client writes text is refused, and the refusal does
// not quote it.
func TestDecodeCanary(t *testing.T) {
	ev := newRoom(t)
	for _, mod := range []func(map[string]any){
		func(m map[string]any) { m["props"] = map[string]string{"note": "my id is " + canary} },
		func(m map[string]any) { m["props"] = map[string]string{"note": "1101-0519-4912-3100-2x"} },
		func(m map[string]any) { m["props"] = map[string]string{canary: "1"} },
		func(m map[string]any) {
			m["type"] = "search"
			m["props"] = map[string]string{"query": "１１０１０５１９４９１２３１００２Ｘ", "results": "0"}
		},
		func(m map[string]any) { m["session"] = canary },
		func(m map[string]any) { m["anonymousId"] = "a" + canary },
		func(m map[string]any) { m["id"] = canary },
		func(m map[string]any) { m["service"] = canary },
	} {
		raw := good(mod)
		e, f := ev.Decode(web, raw, recv)
		if len(f) == 0 {
			t.Errorf("%s: accepted as %+v", raw, e)
			continue
		}
		if strings.Contains(strings.Join(f, " "), "0519") {
			t.Errorf("refusal quotes the number: %q", f)
		}
	}
}

func TestPseudonyms(t *testing.T) {
	ev := newRoom(t, func(c *Config) { c.Domains = map[string]string{"dept-app": "dept"} })
	p := func(o Origin, raw json.RawMessage) string {
		t.Helper()
		e, f := ev.Decode(o, raw, recv)
		if f != nil {
			t.Fatal(f)
		}
		return e.Pseudonym
	}
	onWeb := p(web, good(nil))
	onMobile := p(Origin{ClientID: "mobile-app", Channel: store.ChannelMobile, Account: "c_alice"}, good(nil))
	atKiosk := p(Origin{ClientID: KioskClient, Channel: store.ChannelKiosk, Account: "c_alice", KioskID: "k1", SiteID: "s", Region: "440305"}, good(nil))
	inDept := p(Origin{ClientID: "dept-app", Channel: store.ChannelWeb, Account: "c_alice"}, good(nil))
	bob := p(Origin{ClientID: "web-portal", Channel: store.ChannelWeb, Account: "c_bob"}, good(nil))
	anon := p(Origin{ClientID: "web-portal", Channel: store.ChannelWeb}, good(func(m map[string]any) { m["anonymousId"] = "c_alice" }))
	none := p(Origin{ClientID: "web-portal", Channel: store.ChannelWeb}, good(nil))
	if onWeb != onMobile || onWeb != atKiosk {
		t.Errorf("one citizen, one domain, three pseudonyms: %s %s %s", onWeb, onMobile, atKiosk)
	}
	if inDept == onWeb || bob == onWeb || anon == onWeb || none != "" {
		t.Errorf("pseudonyms that must differ: dept %s, bob %s, anonymous %s, none %q (alice %s)", inDept, bob, anon, none, onWeb)
	}
	other, err := NewPseudonyms(bytes.Repeat([]byte{8}, 32), nil)
	if err != nil || other.Citizen("web-portal", "c_alice") == onWeb {
		t.Errorf("another hub's key gives the same pseudonym")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(good(nil)))
	f.Add([]byte(`{"v":1,"id":"abcdefgh","type":"search","ts":1,"props":{"query":"` + canary + `","results":"0"}}`))
	ev := newRoom(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, errs := ev.Decode(web, raw, recv)
		if errs != nil {
			return
		}
		if err := store.CheckEvents([]store.Event{e}); err != nil {
			t.Fatalf("decoded event the store refuses: %v", err)
		}
	})
}
