package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestDecodePeripherals(t *testing.T) {
	good := `{"devices":[{"id":"receipt0","class":"receipt-printer","manufacturer":"Xprinter","model":"XP-80","profile":"xprinter-xp80-serial",` +
		`"connected":true,"status":"fault","reasons":["paper-out","cover-open"],"consumables":[{"name":"paper","level":"empty"}],"since":1795723800000},` +
		`{"id":"idcard0","class":"id-reader","connected":false,"status":"unknown","since":0,"error":"open /dev/pts/9: no such file"}]}`
	p, err := DecodePeripherals([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Devices) != 2 || p.Devices[0].Status != PeripheralFault || p.Devices[0].Consumables[0] != (Consumable{"paper", LevelEmpty}) ||
		p.Devices[1].Connected || p.Devices[1].Error == "" {
		t.Fatalf("decoded %+v", p)
	}
	if p, err := DecodePeripherals([]byte(`{"devices":[]}`)); err != nil || len(p.Devices) != 0 {
		t.Fatalf("empty inventory: %+v %v", p, err)
	}
	for body, want := range map[string]string{
		`42`:   "cannot unmarshal number",
		`null`: "JSON object",
		`[]`:   "cannot unmarshal array",
		`{"devices":[{"id":"a","class":"b","status":"warning"}]}`:                                     `status "warning"`,
		`{"devices":[{"id":"","class":"b","status":"ok"}]}`:                                           "id and class",
		`{"devices":[{"id":"a","class":"b","status":"ok","reasons":[""]}]}`:                           "reason",
		`{"devices":[{"id":"a","class":"b","status":"ok","consumables":[{"name":"x","level":"2"}]}]}`: `level "2"`,
		`{"devices":[{"id":"a","class":"b","status":"ok","since":-1}]}`:                               "negative",
		`{"devices":[{"id":"a","class":"b","status":"ok","colour":"red"}]}`:                           `unknown field "colour"`,
		`{"scanner":"offline"}`: `unknown field "scanner"`,
		`{"devices":[]} {}`:     "trailing data",
	} {
		_, err := DecodePeripherals([]byte(body))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrMalformed saying %q", body, err, want)
		}
	}
	many := Peripherals{Devices: make([]Peripheral, MaxPeripherals+1)}
	for i := range many.Devices {
		many.Devices[i] = Peripheral{ID: fmt.Sprint(i), Class: "x", Status: PeripheralOK}
	}
	if _, err := DecodePeripherals(Encode(many)); !errors.Is(err, ErrMalformed) {
		t.Errorf("%d devices accepted", len(many.Devices))
	}
}

func TestDecodeHeartbeat(t *testing.T) {
	hb := Heartbeat{UptimeS: 81, CPUPercent: 12.5, MemUsedBytes: 1, MemTotal: 2, DiskFree: 3, DiskTotal: 4, AgentVersion: "1.2.3", OutboxDepth: 5, RSSBytes: 6}
	if got, err := DecodeHeartbeat(Encode(hb)); err != nil || got != hb {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, body := range []string{`{"cpuPercent":"high"}`, `{"temperature":41}`, `[1]`, `{"uptimeS":-1}`, ``} {
		if _, err := DecodeHeartbeat([]byte(body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", body, err)
		}
	}
}

func TestKioskClaims(t *testing.T) {
	c := KioskClaims{Issuer: "k-1", Subject: "k-1", Audience: Audience{"https://hub"}, IssuedAt: 1764100000, Expiry: 1764100060, ID: "j1",
		Card: &IDCard{Number: Secret("11010519491231002X"), Name: "张三"}}
	b := Encode(c)
	if !strings.Contains(string(b), `"aud":"https://hub"`) || !strings.Contains(string(b), `"id_card":{"number":"11010519491231002X","name":"张三"}`) {
		t.Fatalf("encoded %s", b)
	}
	var back KioskClaims
	if err := json.Unmarshal([]byte(`{"iss":"k-1","aud":["a","b"],"iat":1764100000.9,"exp":1764100060}`), &back); err != nil ||
		len(back.Audience) != 2 || back.IssuedAt != 1764100000 || back.IssuedAt.Time().Unix() != 1764100000 {
		t.Fatalf("decoded %+v %v", back, err)
	}
	for _, bad := range []string{`{"aud":7}`, `{"iat":"yesterday"}`, `{"exp":-5}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "card", c.Card, "number", c.Card.Number)
	for _, s := range []string{fmt.Sprint(c.Card), fmt.Sprintf("%+v %#v", *c.Card, c.Card), logged.String()} {
		if strings.Contains(s, "1949") || strings.Contains(s, "张三") {
			t.Errorf("card data shown: %s", s)
		}
	}
	c.Card.Wipe()
	if c.Card.Number != nil || c.Card.Name != "" {
		t.Error("not wiped")
	}
	var none *IDCard
	none.Wipe()
}
