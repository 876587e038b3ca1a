package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// AnalyticsQuery selects what the analytics and rating endpoints aggregate: From and To are RFC
// 3339 times or China Standard Time dates (YYYY-MM-DD; To exclusive), empty for the 30 days up
// to the end of today.
type AnalyticsQuery struct {
	From, To string
	Service  string
	Channel  string
	Region   string
	By       []string // heat: service, channel, region, hour; ratings: one of service, department, channel, site
}

func (q AnalyticsQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"from": q.From, "to": q.To, "service": q.Service, "channel": q.Channel,
		"region": q.Region, "by": strings.Join(q.By, ",")} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

func withQuery(p string, v url.Values) string {
	if len(v) == 0 {
		return p
	}
	return p + "?" + v.Encode()
}

// Heat returns heat cells (cells of fewer than K citizens left out by the hub).
func (c *Client) Heat(ctx context.Context, q AnalyticsQuery) (Heat, error) {
	var out Heat
	return out, c.Do(ctx, http.MethodGet, withQuery(Prefix+"/analytics/heat", q.values()), nil, &out)
}

// Funnel returns funnels per service.
func (c *Client) Funnel(ctx context.Context, q AnalyticsQuery) (Funnel, error) {
	var out Funnel
	return out, c.Do(ctx, http.MethodGet, withQuery(Prefix+"/analytics/funnel", q.values()), nil, &out)
}

// SearchMisses returns the searches that found nothing.
func (c *Client) SearchMisses(ctx context.Context, q AnalyticsQuery) (SearchMisses, error) {
	var out SearchMisses
	return out, c.Do(ctx, http.MethodGet, withQuery(Prefix+"/analytics/search-misses", q.values()), nil, &out)
}

// CoUse returns the services used by those who used service.
func (c *Client) CoUse(ctx context.Context, service string) (CoUses, error) {
	var out CoUses
	return out, c.Do(ctx, http.MethodGet, withQuery(Prefix+"/analytics/co-use", url.Values{"service": {service}}), nil, &out)
}

// RatingSummary aggregates ratings by q.By[0] (default service).
func (c *Client) RatingSummary(ctx context.Context, q AnalyticsQuery) (RatingSummary, error) {
	var out RatingSummary
	return out, c.Do(ctx, http.MethodGet, withQuery(Prefix+"/ratings/summary", q.values()), nil, &out)
}

// FollowUps lists the follow-ups of bad ratings: open ones, or all.
func (c *Client) FollowUps(ctx context.Context, all bool) (FollowUps, error) {
	var out FollowUps
	v := url.Values{}
	if all {
		v.Set("all", "true")
	}
	return out, c.Do(ctx, http.MethodGet, withQuery(Prefix+"/ratings/follow-ups", v), nil, &out)
}

// ResolveFollowUp closes a follow-up with a note and returns those still open.
func (c *Client) ResolveFollowUp(ctx context.Context, id, note string) (FollowUps, error) {
	var out FollowUps
	return out, c.Do(ctx, http.MethodPost, Prefix+"/ratings/follow-ups/"+url.PathEscape(id)+"/resolve", ResolveFollowUp{Note: note}, &out)
}
