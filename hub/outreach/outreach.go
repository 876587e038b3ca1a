// Package outreach is the hub's 服务找人 room: instead of waiting for the citizen to look for a
// service, the hub finds the services her situation calls for and offers them on every channel.
// Two sources: rules on life events and attributes (turning 60 -> senior services; an ID card
// expiring within 90 days -> its renewal; a case closed -> the service that usually follows it),
// evaluated on an injectable clock with the birth date and card expiry the identity provider
// derives from her real-name data (never the data itself); and co-use ("citizens who used X
// often use Y"), over analytics pseudonyms, offered only when at least K citizens did. A citizen
// who opts out gets nothing, on any channel. A deleted account's opt-out is forgotten (OptOuts).
package outreach

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/store"
)

// Facts gives what the hub knows of a citizen's real-name data; hub/identity's Provider.
type Facts interface {
	RealNameOf(ctx context.Context, accountID string) (identity.RealName, error)
}

// Pseudonyms gives a citizen's analytics pseudonym as a client's events carry it (hub/events).
type Pseudonyms interface {
	Citizen(clientID, account string) string
}

// Store is the storage the room reads: opt-outs, the citizen's cases, and the co-use rollups.
type Store interface {
	store.Outreach
	ListCases(ctx context.Context, account string, limit int) ([]store.Case, error)
	ServicesUsed(ctx context.Context, pseudonym string) ([]string, error)
	CoUsed(ctx context.Context, used []string, minCitizens, limit int) ([]store.CoUse, error)
}

// Config holds the rules. Zero values take the defaults shown.
type Config struct {
	SeniorAge      int           // 60
	SeniorServices []string      // senior.card, elderly.allowance
	SeniorBefore   time.Duration // 30 days: offered from this long before the birthday...
	SeniorAfter    time.Duration // 180 days: ...to this long after
	RenewalService string        // idcard.renewal
	RenewalWithin  time.Duration // 90 days before expiry (and 30 days after)
	// FollowUps maps a service to the one that usually follows it, offered for FollowUpWithin
	// (30 days) after a case of the first is closed.
	FollowUps      map[string]string
	FollowUpWithin time.Duration
	K              int // 10, and never less: co-use needs this many citizens
	CoUseLimit     int // 3
	Now            func() time.Time
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.SeniorAge <= 0 {
		c.SeniorAge = 60
	}
	if c.SeniorServices == nil {
		c.SeniorServices = []string{"senior.card", "elderly.allowance"}
	}
	def(&c.SeniorBefore, 30*24*time.Hour)
	def(&c.SeniorAfter, 180*24*time.Hour)
	if c.RenewalService == "" {
		c.RenewalService = "idcard.renewal"
	}
	def(&c.RenewalWithin, 90*24*time.Hour)
	if c.FollowUps == nil {
		c.FollowUps = map[string]string{"hukou.transfer": "social-security.transfer", "birth.registration": "medical-insurance.newborn",
			"marriage.registration": "housing-fund.update"}
	}
	def(&c.FollowUpWithin, 30*24*time.Hour)
	c.K = max(c.K, 10)
	if c.CoUseLimit <= 0 {
		c.CoUseLimit = 3
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Kinds of recommendation.
const (
	KindLifeEvent = "life-event"
	KindCase      = "case"
	KindCoUse     = "co-use"
)

// Recommendation is a service offered to a citizen, and why.
type Recommendation struct {
	Service  string
	Kind     string
	Rule     string // turning-60, id-card-expiring, after:<service>, co-use:<service>
	Citizens int64  // co-use: how many citizens used both
}

// Outreach is the room.
type Outreach struct {
	cfg   Config
	st    Store
	facts Facts
	ps    Pseudonyms
}

// New returns the room.
func New(cfg Config, st Store, facts Facts, ps Pseudonyms) *Outreach {
	cfg.defaults()
	return &Outreach{cfg: cfg, st: st, facts: facts, ps: ps}
}

// SetOptOut records a citizen's choice.
func (o *Outreach) SetOptOut(ctx context.Context, account string, out bool) error {
	return o.st.SetOptOut(ctx, account, out, o.cfg.Now())
}

// OptedOut reports a citizen's choice.
func (o *Outreach) OptedOut(ctx context.Context, account string) (bool, error) {
	return o.st.OptedOut(ctx, account)
}

// Recommend returns the services to offer a citizen who asks through clientID: none when she
// opted out.
func (o *Outreach) Recommend(ctx context.Context, account, clientID string) ([]Recommendation, error) {
	out := []Recommendation{}
	if opted, err := o.st.OptedOut(ctx, account); err != nil || opted {
		return out, err
	}
	now := o.cfg.Now()
	add := func(r Recommendation) {
		if !slices.ContainsFunc(out, func(x Recommendation) bool { return x.Service == r.Service }) {
			out = append(out, r)
		}
	}
	rn, err := o.facts.RealNameOf(ctx, account)
	switch {
	case err == nil:
		if b := rn.Birth.AddDate(o.cfg.SeniorAge, 0, 0); within(now, b.Add(-o.cfg.SeniorBefore), b.Add(o.cfg.SeniorAfter)) {
			for _, s := range o.cfg.SeniorServices {
				add(Recommendation{Service: s, Kind: KindLifeEvent, Rule: fmt.Sprintf("turning-%d", o.cfg.SeniorAge)})
			}
		}
		if e := rn.CardExpiry; !e.IsZero() && within(now, e.Add(-o.cfg.RenewalWithin), e.Add(30*24*time.Hour)) {
			add(Recommendation{Service: o.cfg.RenewalService, Kind: KindLifeEvent, Rule: "id-card-expiring"})
		}
	case errors.Is(err, store.ErrNotFound):
	default:
		// No real-name data (a citizen known by password only): the life-event rules do not
		// apply to her.
	}
	cases, err := o.st.ListCases(ctx, account, 100)
	if err != nil {
		return nil, err
	}
	for _, c := range cases {
		if next, ok := o.cfg.FollowUps[c.Service]; ok && c.Status == store.CaseClosed && within(now, c.UpdatedAt, c.UpdatedAt.Add(o.cfg.FollowUpWithin)) {
			add(Recommendation{Service: next, Kind: KindCase, Rule: "after:" + c.Service})
		}
	}
	used, err := o.st.ServicesUsed(ctx, o.ps.Citizen(clientID, account))
	if err != nil {
		return nil, err
	}
	co, err := o.st.CoUsed(ctx, used, o.cfg.K, o.cfg.CoUseLimit)
	if err != nil {
		return nil, err
	}
	for _, c := range co {
		add(Recommendation{Service: c.To, Kind: KindCoUse, Rule: "co-use:" + c.From, Citizens: c.Citizens})
	}
	return out, nil
}

func within(t, from, to time.Time) bool { return !t.Before(from) && t.Before(to) }
