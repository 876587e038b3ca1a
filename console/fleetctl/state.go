package fleetctl

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

func (a *app) stateCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "state",
		Short: "Show and set a kiosk's desired configuration",
		Long: `Each kiosk has a versioned desired configuration document, set here, and the version it reports
running. The hub sends a new desired version when the kiosk is online; until the kiosk reports it,
the two drift.`,
	})
	var doc string
	set := &cobra.Command{
		Use:   "set DEVICE --doc JSON|@file",
		Short: "Store a new desired configuration (the next version) for a kiosk",
		Long: `Store a new desired configuration document for DEVICE. --doc is a JSON object, inline, @file, or
@- to read it from stdin. The hub gives it the next version number and sends it to the kiosk.
The whole document is replaced: include every setting, not only the changed ones.`,
		Example: `  fleetctl state set k-7c2a9e01b3d4f5a6 --doc '{"heartbeatInterval":"30s","idleTimeout":"2m","logLevel":"info"}'
  fleetctl state set k-7c2a9e01b3d4f5a6 --doc @kiosk.json`,
		Args: args("DEVICE"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			p.required([2]string{"--doc", doc})
			raw := p.jsonArg("--doc", doc, c.InOrStdin(), true)
			return callHub(a, c, &p, "set desired state of "+argv[0], func(ctx context.Context, hub *api.Client) (fleet.DocState, error) {
				return hub.SetDesired(ctx, argv[0], raw)
			}, func(st fleet.DocState) error {
				_, err := fmt.Fprintf(a.env.Stdout, "desired state of %s is now v%d\n", argv[0], st.Version)
				return err
			})
		},
	}
	set.Flags().StringVar(&doc, "doc", "", "the document: a JSON object, @file or @- (required)")

	show := &cobra.Command{
		Use:     "show DEVICE",
		Aliases: []string{"get"},
		Short:   "Show a kiosk's desired and reported configuration and whether they drift",
		Example: `  fleetctl state show k-7c2a9e01b3d4f5a6`,
		Args:    args("DEVICE"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			return callHub(a, c, &p, "show state of "+argv[0], func(ctx context.Context, hub *api.Client) (api.State, error) {
				return hub.State(ctx, argv[0])
			}, func(st api.State) error {
				a.printState(st.Desired, st.Reported, st.Drift, "")
				return nil
			})
		},
	}
	cmd.AddCommand(show, set)
	return cmd
}

// recordTime shows record times to the millisecond, in fixed width, with their UTC offset.
const recordTime = "2006-01-02 15:04:05.000 -07:00"

// defaultRecordLimit is the hub's page size when no --limit is given (docs/api.md).
const defaultRecordLimit = 100

func (a *app) recordsCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "records",
		Aliases: []string{"record"},
		Short:   "List the records kiosks sent (heartbeats, events, command results, ...)",
	})
	list := a.recordsListCmd()
	cmd.AddCommand(list)
	// The old spelling, "fleetctl records DEVICE", still lists.
	cmd.Args, cmd.RunE = cobra.ArbitraryArgs, func(c *cobra.Command, argv []string) error {
		if len(argv) == 0 {
			return usagef("%q needs a subcommand: %s", c.CommandPath(), subNames(c))
		}
		if err := list.Args(c, argv); err != nil {
			return err
		}
		return list.RunE(c, argv)
	}
	list.Flags().VisitAll(func(f *pflag.Flag) {
		cmd.Flags().AddFlag(&pflag.Flag{Name: f.Name, Usage: f.Usage, Value: f.Value, DefValue: f.DefValue, Hidden: true})
	})
	return cmd
}

func (a *app) recordsListCmd() *cobra.Command {
	var kind, after, limit string
	cmd := &cobra.Command{
		Use:   "list DEVICE [--kind K] [--after N] [--limit N]",
		Short: "List the records a kiosk sent, oldest first",
		Long: `List the records the hub stored for DEVICE, oldest first, one page at a time. Each has the
hub-wide ID, the kiosk's outbox epoch and sequence number, kind, class (t telemetry, b business),
the kiosk's timestamp and the hub's receive time, and the body (cut short in the table; use -o json
for all of it). When a page is full, the next page starts at --after with the ID printed last.`,
		Example: `  fleetctl records list k-7c2a9e01b3d4f5a6 --kind alert
  fleetctl records list k-7c2a9e01b3d4f5a6 --after 98211 --limit 500 -o json`,
		Args: args("DEVICE"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			if kind != "" && !api.ValidKind(kind) {
				p.add("--kind %q: want a record kind such as heartbeat, alert or cmd.result", kind)
			}
			q := api.RecordQuery{Kind: kind, After: p.int("--after", after, 0, 1<<62), Limit: int(p.int("--limit", limit, 1, 1000))}
			return callHub(a, c, &p, "list records of "+argv[0], func(ctx context.Context, hub *api.Client) (api.Records, error) {
				recs, err := hub.Records(ctx, argv[0], q)
				recs.Records = nonNil(recs.Records)
				return recs, err
			}, func(recs api.Records) error {
				loc := a.env.Location
				t := newTable(a.env.Stdout, "ID", "EPOCH", "SEQ", "KIND", "CLASS", "DEVICE TIME", "RECEIVED", "BODY")
				for _, r := range recs.Records {
					t.row(fmt.Sprint(r.ID), r.Epoch, fmt.Sprint(r.Seq), r.Kind, string(r.Class),
						r.DeviceTS.In(loc).Format(recordTime), r.RecvTS.In(loc).Format(recordTime), compact(r.Body, 80))
				}
				if err := t.flush(); err != nil {
					return err
				}
				page := q.Limit
				if page == 0 {
					page = defaultRecordLimit
				}
				if len(recs.Records) >= page {
					fmt.Fprintf(a.env.Stderr, "more may follow: --after %d\n", recs.Next)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&kind, "kind", "", "only records of this kind (heartbeat, alert, cmd.result, state.reported, peripherals, ...)")
	f.StringVar(&after, "after", "", "only records with an ID above this (to page on)")
	f.StringVar(&limit, "limit", "", fmt.Sprintf("at most this many records, 1 to 1000 (hub default %d)", defaultRecordLimit))
	return cmd
}

func (a *app) healthCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "health",
		Short: "Show the hub's health (exit 1 when degraded)",
		Long: `Show the hub's health: status, version, store backend, MQTT listener, and how many kiosks are
connected of those enrolled. Exits 1 when the hub reports itself degraded, so it can serve as a
probe.`,
		Example: `  fleetctl health
  fleetctl --hub https://hub.example.gov.cn health -o json`,
		Args: args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			var status string
			err := callHub(a, c, &p, "health", func(ctx context.Context, hub *api.Client) (api.Health, error) {
				h, err := hub.Health(ctx)
				status = h.Status
				return h, err
			}, func(h api.Health) error {
				t := newTable(a.env.Stdout)
				t.row("Status:", h.Status)
				t.row("Version:", h.Version)
				t.row("Store:", h.Store) // "ok", or why its check failed
				t.row("Broker:", h.Broker)
				t.row("Kiosks:", fmt.Sprintf("%d connected of %d", h.ConnectedCount, h.Devices))
				return t.flush()
			})
			if err == nil && status != "ok" {
				err = fmt.Errorf("hub %s is %s", a.client.BaseURL, status)
			}
			return err
		},
	}
}
