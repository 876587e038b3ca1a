package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/events"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// EventIntake is the event room as the API serves it (hub/events).
type EventIntake interface {
	Submit(ctx context.Context, o events.Origin, raws []json.RawMessage) (api.EventsResult, error)
	// Admit returns an *events.OverloadError when a batch would be refused for the load whatever
	// it holds, before it is read.
	Admit() error
	Channel(clientID, named string) (string, error)
	KioskOrigin(ctx context.Context, deviceID, account string) (events.Origin, error)
}

// ClientAuthenticator authenticates a channel's registered client by its ID and secret (empty for
// a public client); hub/identity's Provider is one.
type ClientAuthenticator interface {
	AuthenticateClient(ctx context.Context, id, secret string) (store.Client, error)
}

// roleCitizen is the role of citizens' accounts.
const roleCitizen = "citizen"

func (a *API) eventRoutes() {
	if a.cfg.Events == nil {
		return
	}
	inFlight := make(chan struct{}, max(a.cfg.EventsInFlight, 1))
	// Before the body is read: a bounded number of batches at once, so that a spike costs
	// bounded memory and is answered 429 at once rather than queued in the server; and the
	// channel authenticated, so that nobody unknown makes the hub read a body.
	a.gates["POST /events"] = func(w http.ResponseWriter, r *http.Request) (*http.Request, func(), error) {
		w.Header().Set("Access-Control-Allow-Origin", "*") // bearer or basic credentials, never cookies
		select {
		case inFlight <- struct{}{}:
		default:
			return r, nil, &api.Error{Status: http.StatusTooManyRequests, Code: "overloaded",
				Message: "too many event batches at once; retry later", RetryAfter: time.Second}
		}
		release := func() { <-inFlight }
		o, err := a.eventOrigin(r)
		if err == nil {
			err = overloaded(a.cfg.Events.Admit())
		}
		if err != nil {
			release()
			return r, nil, err
		}
		return r.WithContext(context.WithValue(r.Context(), originKey{}, o)), release, nil
	}
	route(a, "POST /events", anyone, http.StatusOK, a.postEvents)
	// CORS preflight (Fetch standard §3.2) for pages on other origins.
	a.mux.HandleFunc("OPTIONS "+api.EventsPath, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "POST")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
	})
}

// postEvents takes a batch of events from a channel: 200 with what was stored (once durable)
// and every refused event with its fields; 400 when every event was refused; 429 with
// Retry-After when the hub cannot take the batch now.
func (a *API) postEvents(r *http.Request, req api.EventBatch) (api.EventsResult, error) {
	o := r.Context().Value(originKey{}).(events.Origin) // the gate's
	res, err := a.cfg.Events.Submit(r.Context(), o, req.Events)
	var over *events.OverloadError
	switch {
	case errors.As(err, &over):
		return res, overloaded(over)
	case errors.Is(err, events.ErrBatch):
		return res, apiErr(http.StatusBadRequest, "bad_request", "events: at most %d events per batch", events.MaxBatch)
	case err != nil && r.Context().Err() == nil:
		// Shutting down, or the store failed: nothing is lost by sending the batch again.
		a.cfg.Log.Warn("events not stored", "client", o.ClientID, "err", err)
		return res, &api.Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "events not stored; retry later", RetryAfter: time.Second}
	case err != nil:
		return res, err
	}
	if res.Accepted+res.Duplicates == 0 && len(res.Rejected) > 0 {
		var fields []string
		for _, rj := range res.Rejected {
			for _, f := range rj.Fields {
				fields = append(fields, fmt.Sprintf("events[%d].%s", rj.Index, f))
			}
		}
		return res, &api.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "every event was refused", Fields: fields}
	}
	return res, nil
}

// overloaded answers an *events.OverloadError (or nil) with 429 and Retry-After.
func overloaded(err error) error {
	var over *events.OverloadError
	if !errors.As(err, &over) {
		return err
	}
	return &api.Error{Status: http.StatusTooManyRequests, Code: "overloaded", Message: over.Error(), RetryAfter: over.RetryAfter}
}

// originKey holds in a request's context the channel its gate authenticated (events.Origin).
type originKey struct{}

// eventOrigin authenticates the channel a batch comes from: a client by HTTP Basic credentials
// (RFC 7617; a public client by its ID and an empty secret), or an access token the hub issued
// to a client for the citizens' API, a citizen's or the kiosk shell's (a fleet API token is
// refused). Clients other than the built-in channels name their channel with
// ?channel=web|mobile|miniprogram. Kiosk events come only from an enrolled,
// unrevoked kiosk: through its outbox, or with a citizen's session opened there.
func (a *API) eventOrigin(r *http.Request) (events.Origin, error) {
	unauthorized := apiErr(http.StatusUnauthorized, "unauthorized", "events need a channel client's credentials or an access token for the citizens' API")
	named := r.URL.Query().Get("channel")
	if id, secret, ok := r.BasicAuth(); ok {
		if a.cfg.Clients == nil {
			return events.Origin{}, unauthorized
		}
		if _, err := a.cfg.Clients.AuthenticateClient(r.Context(), id, secret); err != nil {
			return events.Origin{}, unauthorized
		}
		ch, err := a.cfg.Events.Channel(id, named)
		if err != nil {
			return events.Origin{}, apiErr(http.StatusBadRequest, "bad_request", "channel: %v", err)
		}
		if ch == store.ChannelKiosk {
			return events.Origin{}, apiErr(http.StatusForbidden, "forbidden", "kiosk events come from a kiosk (its outbox, or a session opened there)")
		}
		return events.Origin{ClientID: id, Channel: ch}, nil
	}
	if !strings.HasPrefix(strings.ToLower(r.Header.Get("Authorization")), "bearer ") {
		return events.Origin{}, unauthorized
	}
	p, err := a.authenticateFor(r, AudienceCitizen) // a channel's token, never the fleet API's
	if err != nil {
		return events.Origin{}, unauthorized
	}
	if p.ClientID == "" {
		return events.Origin{}, apiErr(http.StatusForbidden, "forbidden", "events come from a channel: a client's credentials or a token issued to one")
	}
	account := ""
	if p.Has(roleCitizen) {
		account = p.Subject
	}
	if p.KioskID != "" {
		o, err := a.cfg.Events.KioskOrigin(r.Context(), p.KioskID, account)
		if errors.Is(err, events.ErrKiosk) {
			return o, apiErr(http.StatusForbidden, "forbidden", "kiosk %s is unknown or revoked", p.KioskID)
		}
		return o, err
	}
	ch, err := a.cfg.Events.Channel(p.ClientID, named)
	if err != nil {
		return events.Origin{}, apiErr(http.StatusBadRequest, "bad_request", "channel: %v", err)
	}
	if ch == store.ChannelKiosk {
		return events.Origin{}, apiErr(http.StatusForbidden, "forbidden", "kiosk events come from a kiosk (its outbox, or a session opened there)")
	}
	return events.Origin{ClientID: p.ClientID, Channel: ch, Account: account}, nil
}
