package fleetctl

import (
	"context"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// dataFlags are the range and filters of the data commands.
func dataFlags(cmd *cobra.Command, q *api.AnalyticsQuery, filters bool) {
	f := cmd.Flags()
	f.StringVar(&q.From, "from", "", "from this day (YYYY-MM-DD, China Standard Time) or RFC 3339 time (default: 30 days before --to)")
	f.StringVar(&q.To, "to", "", "up to this day, exclusive (default: the end of today)")
	if filters {
		f.StringVar(&q.Service, "service", "", "only this service (catalog ID)")
		f.StringVar(&q.Channel, "channel", "", "only this channel: kiosk, web, mobile or miniprogram")
		f.StringVar(&q.Region, "region", "", "only this GB/T 2260 region and its sub-regions (a prefix, e.g. 4403)")
	}
}

const suppressed = `Cells of fewer than 10 distinct citizens are left out by the hub: they are never shown nor
exported.`

func (a *app) eventsCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "events",
		Short: "Service heat, funnels and searches that found nothing, from every channel's events",
		Long: `Analytics over the unified event stream of every channel (kiosk, web, mobile, mini-program),
from the hub's rollups. ` + suppressed,
	})
	cmd.AddCommand(a.eventsHeatCmd(), a.eventsFunnelCmd(), a.eventsMissesCmd())
	return cmd
}

func (a *app) eventsHeatCmd() *cobra.Command {
	var q api.AnalyticsQuery
	var by string
	cmd := &cobra.Command{
		Use:   "heat [--by service,channel,region,hour] [--from DAY] [--to DAY] [filters]",
		Short: "Events and distinct citizens by service, channel, region and hour",
		Example: `  fleetctl events heat --by service
  fleetctl events heat --by service,hour --from 2026-11-25 --to 2026-11-26 --region 4403
  fleetctl events heat --by region -o json`,
		Args: args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			for _, d := range strings.Split(by, ",") {
				if d != "" && d != "service" && d != "channel" && d != "region" && d != "hour" {
					p.add("--by %q: want service, channel, region or hour, comma-separated", d)
				}
			}
			if by != "" {
				q.By = strings.Split(by, ",")
			}
			return callHub(a, c, &p, "heat", func(ctx context.Context, hub *api.Client) (api.Heat, error) {
				return hub.Heat(ctx, q)
			}, func(h api.Heat) error {
				t := newTable(a.env.Stdout, "SERVICE", "CHANNEL", "REGION", "HOUR", "EVENTS", "CITIZENS")
				for _, c := range h.Cells {
					hour := ""
					if c.Hour != nil {
						hour = c.Hour.In(a.env.Location).Format("2006-01-02 15:00")
					}
					t.row(dash(c.Service), dash(c.Channel), dash(c.Region), dash(hour), itoa(c.Events), itoa(c.Citizens))
				}
				return t.flush()
			})
		},
	}
	dataFlags(cmd, &q, true)
	cmd.Flags().StringVar(&by, "by", "service", "dimensions to group by: service, channel, region, hour (comma-separated; empty: one total)")
	return cmd
}

func (a *app) eventsFunnelCmd() *cobra.Command {
	var q api.AnalyticsQuery
	cmd := &cobra.Command{
		Use:     "funnel [--service ID] [--channel CH] [--from DAY] [--to DAY]",
		Short:   "Distinct citizens per service at each stage: guide viewed, started, submitted, done",
		Example: `  fleetctl events funnel --service hukou.transfer`,
		Args:    args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			return callHub(a, c, &p, "funnel", func(ctx context.Context, hub *api.Client) (api.Funnel, error) {
				return hub.Funnel(ctx, q)
			}, func(f api.Funnel) error {
				t := newTable(a.env.Stdout, "SERVICE", "STAGE", "CITIZENS")
				for _, s := range f.Steps {
					t.row(s.Service, s.Stage, itoa(s.Citizens))
				}
				return t.flush()
			})
		},
	}
	dataFlags(cmd, &q, false)
	cmd.Flags().StringVar(&q.Service, "service", "", "only this service")
	cmd.Flags().StringVar(&q.Channel, "channel", "", "only this channel")
	return cmd
}

func (a *app) eventsMissesCmd() *cobra.Command {
	var q api.AnalyticsQuery
	cmd := &cobra.Command{
		Use:     "misses [--from DAY] [--to DAY]",
		Short:   "Searches that found nothing, most citizens first",
		Example: `  fleetctl events misses --from 2026-11-01`,
		Args:    args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			return callHub(a, c, &p, "search misses", func(ctx context.Context, hub *api.Client) (api.SearchMisses, error) {
				return hub.SearchMisses(ctx, q)
			}, func(m api.SearchMisses) error {
				t := newTable(a.env.Stdout, "QUERY", "SEARCHES", "CITIZENS")
				for _, x := range m.Misses {
					t.row(x.Query, itoa(x.Searches), itoa(x.Citizens))
				}
				return t.flush()
			})
		},
	}
	dataFlags(cmd, &q, false)
	return cmd
}

func (a *app) ratingsCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "ratings",
		Aliases: []string{"rating"},
		Short:   "Ratings of services (好差评): aggregates, and the follow-ups of bad ones",
	})
	cmd.AddCommand(a.ratingsSummaryCmd(), a.ratingsFollowUpsCmd(), a.ratingsResolveCmd())
	return cmd
}

func (a *app) ratingsSummaryCmd() *cobra.Command {
	var q api.AnalyticsQuery
	var by string
	cmd := &cobra.Command{
		Use:   "summary [--by service|department|channel|site] [--from DAY] [--to DAY]",
		Short: "Ratings, citizens, average and bad ratings per service, department, channel or site",
		Long:  "Aggregates of the ratings in the range. " + suppressed,
		Example: `  fleetctl ratings summary --by department
  fleetctl ratings summary --by site --from 2026-11-01`,
		Args: args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			if by != "service" && by != "department" && by != "channel" && by != "site" {
				p.add("--by %q: want service, department, channel or site", by)
			}
			q.By = []string{by}
			return callHub(a, c, &p, "rating summary", func(ctx context.Context, hub *api.Client) (api.RatingSummary, error) {
				return hub.RatingSummary(ctx, q)
			}, func(s api.RatingSummary) error {
				t := newTable(a.env.Stdout, strings.ToUpper(s.By), "RATINGS", "CITIZENS", "AVERAGE", "BAD", "1", "2", "3", "4", "5")
				for _, g := range s.Groups {
					t.row(dash(g.Key), itoa(g.Ratings), itoa(g.Citizens), strconv.FormatFloat(g.Average, 'f', 2, 64), itoa(g.Bad),
						itoa(g.Scores[0]), itoa(g.Scores[1]), itoa(g.Scores[2]), itoa(g.Scores[3]), itoa(g.Scores[4]))
				}
				return t.flush()
			})
		},
	}
	dataFlags(cmd, &q, false)
	cmd.Flags().StringVar(&by, "by", "service", "service, department, channel or site")
	return cmd
}

func (a *app) ratingsFollowUpsCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "follow-ups [--all]",
		Short:   "Bad ratings (1 or 2) awaiting a follow-up, oldest due first; OVERDUE past their deadline",
		Example: `  fleetctl ratings follow-ups`,
		Args:    args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			return callHub(a, c, &p, "follow-ups", func(ctx context.Context, hub *api.Client) (api.FollowUps, error) {
				return hub.FollowUps(ctx, all)
			}, a.followUpTable)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "also those resolved")
	return cmd
}

func (a *app) followUpTable(f api.FollowUps) error {
	t := newTable(a.env.Stdout, "ID", "SERVICE", "SCORE", "CHANNEL", "SITE", "CASE", "DUE", "STATE", "COMMENT")
	for _, x := range f.FollowUps {
		state := "open"
		switch {
		case !x.ResolvedAt.IsZero():
			state = "resolved by " + x.ResolvedBy
		case x.Overdue:
			state = "OVERDUE"
		}
		t.row(x.Rating.ID, x.Rating.Service, strconv.Itoa(x.Rating.Score), x.Rating.Channel, dash(x.Rating.SiteID), dash(x.Rating.CaseID),
			x.Due.In(a.env.Location).Format("2006-01-02 15:04 -0700"), state, dash(x.Rating.Comment))
	}
	return t.flush()
}

func (a *app) ratingsResolveCmd() *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:     "resolve RATING-ID --note TEXT",
		Short:   "Close the follow-up of a bad rating with what was done",
		Example: `  fleetctl ratings resolve rating-5f1c0a9b3d2e --note "called back; queue reorganised"`,
		Args:    args("RATING-ID"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			p.required([2]string{"--note", note})
			return callHub(a, c, &p, "resolve "+argv[0], func(ctx context.Context, hub *api.Client) (api.FollowUps, error) {
				return hub.ResolveFollowUp(ctx, argv[0], note)
			}, a.followUpTable)
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "what was done (required)")
	return cmd
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
