package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func (a *API) commandRoutes() {
	route(a, "POST /devices/{id}/commands", staff, http.StatusAccepted, a.createCommand)
	route(a, "GET /devices/{id}/commands", staff, http.StatusOK, a.listCommands)
	route(a, "GET /commands/{id}", staff, http.StatusOK, a.getCommand, holding(maxWait))
}

// maxWait is the longest wait a GET /commands/{id} may ask for.
const maxWait = 60 * time.Second

// createCommand queues a command and has it sent at once if the device is connected.
func (a *API) createCommand(r *http.Request, req api.CreateCommand) (fleet.Command, error) {
	d, err := a.device(r)
	if err != nil {
		return fleet.Command{}, err
	}
	var iv invalid
	iv.check(wire.ValidKind(req.Name), "name", "1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter")
	iv.check(len(req.Args) == 0 || json.Valid(req.Args), "args", "must be JSON")
	iv.check(len(req.Args) <= 32<<10, "args", "at most 32 KiB")
	defTTL := time.Hour
	if req.Name == api.CmdLogTail {
		_, err := api.ParseLogTail(req.Args)
		iv.check(err == nil, "args", "%v", err)
		defTTL = api.LogTailTTL
	}
	ttl := parseTTL(req.TTL, defTTL, 7*24*time.Hour, &iv, "ttl")
	iv.check(!d.Revoked, "device", "device %s is revoked", d.ID)
	if err := iv.err(); err != nil {
		return fleet.Command{}, err
	}
	now := a.cfg.Now()
	c := store.Command{ID: "c-" + randomHex(10), DeviceID: d.ID, Name: req.Name, Args: req.Args, State: wire.CmdQueued,
		CreatedAt: now, ExpiresAt: now.Add(ttl), UpdatedAt: now}
	if err := a.cfg.Store.CreateCommand(r.Context(), c); err != nil {
		return fleet.Command{}, err
	}
	a.cfg.Dispatch.SendPending(r.Context(), d.ID)
	if c2, err := a.cfg.Store.GetCommand(r.Context(), c.ID); err == nil {
		c = c2
	}
	return apiCommand(c), nil
}

func (a *API) listCommands(r *http.Request, _ none) (api.Commands, error) {
	d, err := a.device(r)
	if err != nil {
		return api.Commands{}, err
	}
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		var iv invalid
		iv.check(err == nil && n >= 1 && n <= 1000, "limit", "want 1..1000, got %q", s)
		if err := iv.err(); err != nil {
			return api.Commands{}, err
		}
		limit = n
	}
	cs, err := a.cfg.Store.ListCommands(r.Context(), d.ID, limit)
	return api.Commands{Commands: convert(cs, apiCommand)}, err
}

// getCommand returns a command; with ?wait=D it holds the request until the command is terminal
// or D (at most maxWait) has passed.
func (a *API) getCommand(r *http.Request, _ none) (fleet.Command, error) {
	id := r.PathValue("id")
	var wait time.Duration
	if s := r.URL.Query().Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		var iv invalid
		iv.check(err == nil && d >= 0 && d <= maxWait, "wait", "want a duration from 0s to 60s, got %q", s)
		if err := iv.err(); err != nil {
			return fleet.Command{}, err
		}
		wait = d
	}
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for first := true; ; first = false {
		c, err := a.cfg.Store.GetCommand(r.Context(), id)
		if err == nil && first {
			if _, err := a.scopedDevice(r, c.DeviceID); err != nil {
				return fleet.Command{}, err
			}
		}
		if err != nil || c.State.Terminal() || !time.Now().Before(deadline) {
			return apiCommand(c), err
		}
		select {
		case <-r.Context().Done():
			return fleet.Command{}, r.Context().Err()
		case <-tick.C:
		}
	}
}

func apiCommand(c store.Command) fleet.Command { return fleet.Command(c) }
