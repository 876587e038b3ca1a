package fleetctl

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// maxSilence is the longest silence the hub takes (docs/api.md).
const maxSilence = 7 * 24 * time.Hour

func (a *app) alertsCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "alerts",
		Aliases: []string{"alert"},
		Short:   "List alerts (the hub raises them; the console acknowledges and resolves them)",
	})
	var all bool
	list := &cobra.Command{
		Use:     "list [--all]",
		Short:   "List the unresolved alerts of the kiosks in your scope, newest first",
		Example: "  fleetctl alerts list\n  fleetctl alerts list --all -o json",
		Args:    args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			return callHub(a, c, &p, "list alerts", func(ctx context.Context, hub *api.Client) (api.Alerts, error) {
				as, err := hub.ListAlerts(ctx, all)
				return api.Alerts{Alerts: nonNil(as)}, err
			}, func(out api.Alerts) error {
				t := newTable(a.env.Stdout, "ID", "KIOSK", "REGION", "RULE", "SUBJECT", "DETAIL", "STATE", "OPENED")
				for _, al := range out.Alerts {
					state := al.State
					if al.Silenced {
						state += " (silenced)"
					}
					t.row(fmt.Sprint(al.ID), al.DeviceID, al.Region, al.Rule, al.Subject, printable(al.Detail, false), state, a.stamp(al.OpenedAt))
				}
				return t.flush()
			})
		},
	}
	list.Flags().BoolVar(&all, "all", false, "resolved alerts too")
	cmd.AddCommand(list)
	return cmd
}

func (a *app) silencesCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "silences",
		Aliases: []string{"silence"},
		Short:   "Silence alerts for a maintenance window: of a kiosk or of every kiosk under a region",
	})
	cmd.AddCommand(a.silencesListCmd(), a.silencesCreateCmd(), a.silencesEndCmd())
	return cmd
}

func (a *app) silencesListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the silences in force on the kiosks and regions of your scope",
		Example: "  fleetctl silences list",
		Args:    args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			return callHub(a, c, &p, "list silences", func(ctx context.Context, hub *api.Client) (api.Silences, error) {
				ss, err := hub.ListSilences(ctx)
				return api.Silences{Silences: nonNil(ss)}, err
			}, func(out api.Silences) error { return a.silenceTable(out.Silences) })
		},
	}
}

func (a *app) silencesCreateCmd() *cobra.Command {
	var req api.CreateSilence
	cmd := &cobra.Command{
		Use:   "create (--device ID | --region PREFIX) --for DURATION [--rule RULE] [--reason TEXT]",
		Short: "Silence the alerts of a kiosk, or of every kiosk under a region, for a while",
		Long: `Silence alerts for a maintenance window: they are still raised and shown, but nobody is
notified. A silence covers one kiosk (--device) or every kiosk under a GB/T 2260 region prefix
(--region: 2 digits a province, 4 a city, 6 a county; it must lie in your scope), for one rule
(offline, peripheral-fault, peripheral-degraded) or all of them, from now for --for (1m to 168h).`,
		Example: `  fleetctl silences create --device k-7c2a9e01b3d4f5a6 --rule peripheral-fault --for 2h --reason "printer swap"
  fleetctl silences create --region 4403 --for 4h --reason "Shenzhen network maintenance"`,
		Args: args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			switch {
			case req.DeviceID == "" && req.Region == "":
				p.add("--device or --region is required")
			case req.DeviceID != "" && req.Region != "":
				p.add("--device and --region: give one, not both")
			case req.Region != "" && (len(req.Region)%2 != 0 || len(req.Region) > 6 || !isDigits(req.Region)):
				p.add("--region %q: want a GB/T 2260 prefix of 2, 4 or 6 digits such as 4403", req.Region)
			}
			switch req.Rule {
			case "", "offline", "peripheral-fault", "peripheral-degraded":
			default:
				p.add("--rule %q: want offline, peripheral-fault or peripheral-degraded (none: every rule)", req.Rule)
			}
			p.required([2]string{"--for", req.For})
			if d := p.duration("--for", req.For, time.Minute); d > maxSilence {
				p.add("--for %q: at most %s", req.For, maxSilence)
			}
			return callHub(a, c, &p, "create silence", func(ctx context.Context, hub *api.Client) (api.Silence, error) {
				return hub.CreateSilence(ctx, req)
			}, func(out api.Silence) error { return a.silenceTable([]api.Silence{out}) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.DeviceID, "device", "", "the kiosk to silence")
	f.StringVar(&req.Region, "region", "", "instead of --device: every kiosk under this GB/T 2260 prefix")
	f.StringVar(&req.Rule, "rule", "", "only this rule: offline, peripheral-fault or peripheral-degraded (default: all)")
	f.StringVar(&req.For, "for", "", "how long, from now: 1m to 168h (required)")
	f.StringVar(&req.Reason, "reason", "", "why, for whoever sees the silenced alerts")
	return cmd
}

func (a *app) silencesEndCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "end SILENCE-ID",
		Short:   "End a silence now",
		Example: "  fleetctl silences end 12",
		Args:    args("SILENCE-ID"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			id := p.id("SILENCE-ID", argv[0])
			return callHub(a, c, &p, "end silence "+argv[0], func(ctx context.Context, hub *api.Client) (api.Silence, error) {
				return hub.EndSilence(ctx, id)
			}, func(out api.Silence) error { return a.silenceTable([]api.Silence{out}) })
		},
	}
}

func (a *app) silenceTable(ss []api.Silence) error {
	t := newTable(a.env.Stdout, "ID", "KIOSK/REGION", "RULE", "FROM", "UNTIL", "BY", "REASON")
	for _, s := range ss {
		what := s.DeviceID
		if s.Region != "" {
			what = "region " + s.Region
		}
		until := a.stamp(s.EndsAt)
		if s.EndedBy != "" {
			until += " ended by " + s.EndedBy
		}
		t.row(fmt.Sprint(s.ID), what, cmp.Or(s.Rule, "all"), a.stamp(s.StartsAt), until, s.CreatedBy, printable(s.Reason, false))
	}
	return t.flush()
}

func (a *app) workOrdersCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "workorders",
		Aliases: []string{"workorder", "wo"},
		Short:   "List, create and close work orders: visits to kiosks that alerts call for",
	})
	cmd.AddCommand(a.workOrdersListCmd(), a.workOrdersCreateCmd(), a.workOrdersCloseCmd())
	return cmd
}

func (a *app) workOrdersListCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "list [--all]",
		Short:   "List the open work orders of the kiosks in your scope, newest first",
		Example: "  fleetctl workorders list\n  fleetctl workorders list --all",
		Args:    args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			return callHub(a, c, &p, "list work orders", func(ctx context.Context, hub *api.Client) (api.WorkOrders, error) {
				ws, err := hub.ListWorkOrders(ctx, all)
				return api.WorkOrders{WorkOrders: nonNil(ws)}, err
			}, func(out api.WorkOrders) error { return a.workOrderTable(out.WorkOrders) })
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "closed work orders too")
	return cmd
}

func (a *app) workOrdersCreateCmd() *cobra.Command {
	var req api.CreateWorkOrder
	cmd := &cobra.Command{
		Use:   "create ALERT-ID --assignee NAME [--bring TEXT] [--note TEXT]",
		Short: "Open a work order for an unresolved alert: who goes, what to bring",
		Example: `  fleetctl workorders create 41 --assignee "Li Wei" --bring "2 receipt paper rolls (80 mm)" \
      --note "hall opens 08:30"`,
		Args: args("ALERT-ID"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			id := p.id("ALERT-ID", argv[0])
			p.required([2]string{"--assignee", strings.TrimSpace(req.Assignee)})
			return callHub(a, c, &p, "create work order for alert "+argv[0], func(ctx context.Context, hub *api.Client) (api.WorkOrder, error) {
				return hub.CreateWorkOrder(ctx, id, req)
			}, func(out api.WorkOrder) error { return a.workOrderTable([]api.WorkOrder{out}) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Assignee, "assignee", "", "who goes (required)")
	f.StringVar(&req.Bring, "bring", "", "what to bring: paper rolls, a spare reader")
	f.StringVar(&req.Note, "note", "", "anything else the visit needs to know")
	return cmd
}

func (a *app) workOrdersCloseCmd() *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:     "close WORKORDER-ID [--note TEXT]",
		Short:   "Close a work order: the visit is done",
		Example: `  fleetctl workorders close 7 --note "paper replaced, test page printed"`,
		Args:    args("WORKORDER-ID"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			id := p.id("WORKORDER-ID", argv[0])
			return callHub(a, c, &p, "close work order "+argv[0], func(ctx context.Context, hub *api.Client) (api.WorkOrder, error) {
				return hub.CloseWorkOrder(ctx, id, note)
			}, func(out api.WorkOrder) error { return a.workOrderTable([]api.WorkOrder{out}) })
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "what was done")
	return cmd
}

func (a *app) workOrderTable(ws []api.WorkOrder) error {
	t := newTable(a.env.Stdout, "ID", "ALERT", "KIOSK", "REGION", "ASSIGNEE", "BRING", "STATE", "OPENED")
	for _, w := range ws {
		state := w.State
		if w.ClosedBy != "" {
			state += " by " + w.ClosedBy
			if w.Closing != "" {
				state += ": " + printable(w.Closing, false)
			}
		}
		t.row(fmt.Sprint(w.ID), fmt.Sprint(w.AlertID), w.DeviceID, w.Region, w.Assignee, printable(w.Bring, false), state, a.stamp(w.CreatedAt))
	}
	return t.flush()
}

// id parses a positive numeric ID argument, adding a problem if it is not one.
func (p *problems) id(name, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		p.add("%s %q: want a positive number", name, s)
		return 0
	}
	return n
}
