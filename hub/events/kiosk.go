package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Kiosks finds enrolled kiosks and the kiosk shell's client; store.Store satisfies it.
type Kiosks interface {
	GetDevice(ctx context.Context, id string) (store.Device, error)
	GetClient(ctx context.Context, id string) (store.Client, error)
}

// ErrKiosk refuses events of an unknown or revoked kiosk.
var ErrKiosk = errors.New("events: kiosk unknown or revoked")

// kioskTTL bounds how long a kiosk's site and revocation are taken from the cache.
const kioskTTL = 10 * time.Second

type kioskCache struct {
	mu    sync.Mutex
	devs  map[string]cachedDevice
	shell cachedClient
}

type cachedDevice struct {
	d  store.Device
	at time.Time
}

type cachedClient struct {
	c  store.Client
	at time.Time
}

// KioskOrigin returns the origin of events from kiosk deviceID for a citizen logged in there
// (account, or "" for none); ErrKiosk for a kiosk that is unknown or revoked.
func (ev *Events) KioskOrigin(ctx context.Context, deviceID, account string) (Origin, error) {
	d, err := ev.kiosk(ctx, deviceID)
	if err != nil {
		return Origin{}, err
	}
	return Origin{ClientID: KioskClient, Channel: store.ChannelKiosk, Account: account, KioskID: d.ID, SiteID: d.SiteID,
		Region: d.Region}, nil
}

func (ev *Events) kiosk(ctx context.Context, id string) (store.Device, error) {
	now := time.Now()
	ev.kc.mu.Lock()
	c, ok := ev.kc.devs[id]
	ev.kc.mu.Unlock()
	if !ok || now.Sub(c.at) > kioskTTL {
		d, err := ev.kiosks.GetDevice(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return d, fmt.Errorf("%w: %s", ErrKiosk, id)
		}
		if err != nil {
			return d, err
		}
		c = cachedDevice{d: d, at: now}
		ev.kc.mu.Lock()
		if len(ev.kc.devs) > 200_000 {
			clear(ev.kc.devs)
		}
		ev.kc.devs[id] = c
		ev.kc.mu.Unlock()
	}
	if c.d.Revoked {
		return c.d, fmt.Errorf("%w: %s", ErrKiosk, id)
	}
	return c.d, nil
}

// kioskAccount maps the subject a kiosk record names (the citizen's subject at the kiosk
// shell's client) to the account: the same value when the client has public subjects. A
// pairwise kiosk client's subjects cannot be mapped back: its events count under a pseudonym of
// the subject instead, which never meets the account's.
func (ev *Events) kioskAccount(ctx context.Context, subject string) (account, anonymous string, err error) {
	if subject == "" {
		return "", "", nil
	}
	now := time.Now()
	ev.kc.mu.Lock()
	c := ev.kc.shell
	ev.kc.mu.Unlock()
	if now.Sub(c.at) > kioskTTL {
		cl, err := ev.kiosks.GetClient(ctx, KioskClient)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", "", err
		}
		c = cachedClient{c: cl, at: now}
		ev.kc.mu.Lock()
		ev.kc.shell = c
		ev.kc.mu.Unlock()
	}
	if c.c.Pairwise {
		return "", subject, nil
	}
	return subject, "", nil
}

// RecordEffect is ingest's hook for wire.KindEvent records (ingest.RecordHook): it validates the
// record's event as one from the kiosk, for the citizen its subject names, and sets it as the
// record's effect, which the store applies in the transaction that first stores the record. It
// rewrites the record's body as stored: the event without the subject, or, for an event it
// refuses, only its ID and the fields at fault, so that nothing refused (an ID number) is kept.
func (ev *Events) RecordEffect(ctx context.Context, deviceID string, r *store.IncomingRecord) error {
	var head struct {
		ID  string `json:"id"`
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(r.Body, &head)
	refuse := func(err error, fields []string) error {
		ev.m.rejected.Inc()
		r.Body, _ = json.Marshal(map[string]any{"v": wire.EventVersion, "id": idOf(r.Body), "refused": fields})
		r.Effect.Event = nil
		return fmt.Errorf("events: kiosk %s record %d: %w", deviceID, r.Seq, err)
	}
	account, anon, err := ev.kioskAccount(ctx, head.Sub)
	if err != nil {
		return err // the store failed: the record keeps its body and has no effect
	}
	o, err := ev.KioskOrigin(ctx, deviceID, account)
	if err != nil {
		return refuse(err, []string{"kiosk: unknown or revoked"})
	}
	e, f := ev.Decode(o, r.Body, ev.cfg.Now())
	if f != nil {
		return refuse(f, f)
	}
	if anon != "" {
		e.Pseudonym = ev.ps.Anonymous(KioskClient, anon)
	}
	var body wire.Event
	if err := json.Unmarshal(r.Body, &body); err == nil {
		body.Subject, body.AnonymousID = "", ""
		r.Body, _ = json.Marshal(body)
	}
	r.Effect.Event = &e
	return nil
}
