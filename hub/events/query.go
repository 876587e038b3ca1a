package events

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// ErrQuery wraps an analytics query the room refuses.
var ErrQuery = fmt.Errorf("events: invalid query")

// maxRange bounds the range of one query.
const maxRange = 400 * 24 * time.Hour

func checkRange(from, to time.Time) error {
	if !from.Before(to) || to.Sub(from) > maxRange {
		return fmt.Errorf("%w: want from before to, at most %d days apart", ErrQuery, int(maxRange.Hours()/24))
	}
	return nil
}

// Heat answers a heat query with every cell of fewer than K distinct citizens left out.
func (ev *Events) Heat(ctx context.Context, q store.HeatQuery) ([]store.HeatCell, error) {
	if err := checkRange(q.From, q.To); err != nil {
		return nil, err
	}
	for _, d := range q.By {
		if !slices.Contains([]string{store.ByService, store.ByChannel, store.ByRegion, store.ByHour}, d) {
			return nil, fmt.Errorf("%w: by %q: want service, channel, region or hour", ErrQuery, d)
		}
	}
	q.MinCitizens = ev.cfg.K
	return ev.st.Heat(ctx, q)
}

// Funnel answers a funnel query with every stage of fewer than K distinct citizens left out.
func (ev *Events) Funnel(ctx context.Context, q store.FunnelQuery) ([]store.FunnelStep, error) {
	if err := checkRange(q.From, q.To); err != nil {
		return nil, err
	}
	q.MinCitizens = ev.cfg.K
	return ev.st.Funnel(ctx, q)
}

// SearchMisses answers which searches found nothing, each searched by at least K citizens.
func (ev *Events) SearchMisses(ctx context.Context, q store.MissQuery) ([]store.SearchMiss, error) {
	if err := checkRange(q.From, q.To); err != nil {
		return nil, err
	}
	q.MinCitizens = ev.cfg.K
	return ev.st.SearchMisses(ctx, q)
}

// CoUse returns the services most used by the citizens who used service, each by at least K.
func (ev *Events) CoUse(ctx context.Context, service string) ([]store.CoUse, error) {
	if service == "" {
		return nil, fmt.Errorf("%w: service required", ErrQuery)
	}
	return ev.st.CoUsed(ctx, []string{service}, ev.cfg.K, 20)
}

// Now is the room's clock.
func (ev *Events) Now() time.Time { return ev.cfg.Now() }
