package fleetctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

func (a *app) rolloutsCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "rollouts",
		Aliases: []string{"rollout"},
		Short:   "Give a signed app or agent version to kiosks in waves; follow, pause, resume, abort, roll back",
		Long: `A rollout gives a kiosk app version (published on the kiosk channel, hence signed) or an agent
version (signed with fleetctl keys sign-agent) to the kiosks a selector selects, in waves of
cumulative percentages (default 1,10,50,100) with a soak time between waves. It stops by itself
once --fail-percent of at least --min-done kiosks done failed. Kiosks offline during their wave
get the version when they return. docs/catalog.md, "Rollouts".`,
		Example: `  fleetctl rollouts create --app tax-print --version 1.4.0 --region 4403 --waves 1,10,50,100 --soak 30m
  fleetctl rollouts create --agent --version 0.2.0 --tag pilot --soak 1h
  fleetctl rollouts show ro-20261206-101500-3f2a1c
  fleetctl rollouts pause ro-20261206-101500-3f2a1c --reason "holiday"
  fleetctl rollouts rollback ro-20261206-101500-3f2a1c --reason "citizens cannot print"`,
	})
	cmd.AddCommand(a.rolloutsCreateCmd(), a.rolloutsListCmd(), a.rolloutsShowCmd(), a.rolloutsDevicesCmd())
	for _, act := range []struct{ name, short string }{
		{"pause", "Pause: no further wave starts"},
		{"resume", "Resume a paused rollout"},
		{"abort", "Stop: kiosks not yet reached never get the version (--reason)"},
		{"rollback", "Give every kiosk reached its previous version back (--reason)"},
	} {
		cmd.AddCommand(a.rolloutActCmd(act.name, act.short))
	}
	return cmd
}

func (a *app) rolloutsCreateCmd() *cobra.Command {
	var s api.RolloutSpec
	var agent bool
	var waves, ids []string
	cmd := &cobra.Command{
		Use:   "create (--app APP | --agent) --version V [selector] [--waves 1,10,50,100] [--soak 10m]",
		Short: "Start a rollout (needs the operator role)",
		Args:  args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			p.required([2]string{"--version", s.Version})
			switch {
			case agent && s.App != "":
				p.add("--app and --agent: give one")
			case agent:
				s.Kind = api.RolloutAgent
			case s.App == "":
				p.add("--app or --agent is required")
			default:
				s.Kind = api.RolloutBundle
			}
			for _, w := range waves {
				n, err := strconv.Atoi(strings.TrimSpace(w))
				if err != nil {
					p.add("--waves %q: percentages such as 1,10,50,100", strings.Join(waves, ","))
					break
				}
				s.Waves = append(s.Waves, n)
			}
			s.Selector.IDs = ids
			return callHub(a, c, &p, "create rollout", func(ctx context.Context, hub *api.Client) (api.Rollout, error) {
				return hub.CreateRollout(ctx, s)
			}, a.rolloutTable)
		},
	}
	f := cmd.Flags()
	f.StringVar(&s.App, "app", "", "the kiosk app (a version published on the kiosk channel)")
	f.BoolVar(&agent, "agent", false, "roll out an agent version instead")
	f.StringVar(&s.Version, "version", "", "the version (required)")
	f.StringVar(&s.Selector.Site, "site", "", "only kiosks of this site")
	f.StringVar(&s.Selector.Region, "region", "", "only kiosks of this GB/T 2260 region prefix")
	f.StringVar(&s.Selector.Model, "model", "", "only kiosks of this model")
	f.StringVar(&s.Selector.Tag, "tag", "", "only kiosks with this tag (fleetctl devices tag)")
	f.StringSliceVar(&ids, "devices", nil, "only these kiosks")
	f.StringSliceVar(&waves, "waves", nil, "cumulative percentages of the kiosks per wave (default 1,10,50,100)")
	f.StringVar(&s.Soak, "soak", "", "how long a wave runs before the next (default 10m)")
	f.IntVar(&s.MinDone, "min-done", 0, "judge failures once this many kiosks are done (default 20)")
	f.Float64Var(&s.FailPercent, "fail-percent", 0, "abort when this share of the kiosks done failed (default 5)")
	return cmd
}

func (a *app) rolloutsListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List rollouts, newest first",
		Args:  args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			return callHub(a, c, &p, "list rollouts", func(ctx context.Context, hub *api.Client) (api.Rollouts, error) {
				rs, err := hub.ListRollouts(ctx)
				return api.Rollouts{Rollouts: nonNil(rs)}, err
			}, func(out api.Rollouts) error {
				t := newTable(a.env.Stdout, "ID", "WHAT", "STATE", "WAVE", "UPDATED", "FAILED", "ASSIGNED", "KIOSKS", "CREATED")
				for _, r := range out.Rollouts {
					t.row(r.ID, r.Spec.App+"@"+r.Spec.Version, r.State, fmt.Sprintf("%d/%d", r.Wave, len(r.Waves)),
						strconv.Itoa(r.Totals.Updated), strconv.Itoa(r.Totals.Failed), strconv.Itoa(r.Totals.Assigned), strconv.Itoa(r.Totals.Devices), a.stamp(r.CreatedAt))
				}
				return t.flush()
			})
		},
	}
}

func (a *app) rolloutsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show ROLLOUT",
		Short: "Show a rollout and its progress per wave",
		Args:  args("ROLLOUT"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			return callHub(a, c, &p, "show rollout "+argv[0], func(ctx context.Context, hub *api.Client) (api.Rollout, error) {
				return hub.Rollout(ctx, argv[0])
			}, a.rolloutTable)
		},
	}
}

func (a *app) rolloutTable(r api.Rollout) error {
	w := a.env.Stdout
	fmt.Fprintf(w, "%s  %s %s@%s  %s, wave %d of %d\n", r.ID, r.Spec.Kind, r.Spec.App, r.Spec.Version, r.State, r.Wave, len(r.Waves))
	if r.Reason != "" {
		fmt.Fprintf(w, "  reason: %s\n", printable(r.Reason, false))
	}
	fmt.Fprintf(w, "  soak %s, abort at %g%% failed of at least %d done; created %s by %s\n\n", r.Spec.Soak, r.Spec.FailPercent, r.Spec.MinDone, a.stamp(r.CreatedAt), r.CreatedBy)
	t := newTable(w, "WAVE", "UP TO", "KIOSKS", "UPDATED", "FAILED", "ASSIGNED", "OFFLINE", "WAITING", "REVERTED", "STARTED", "DONE")
	row := func(name, pct string, c api.Counts, started, done string) {
		t.row(name, pct, strconv.Itoa(c.Devices), strconv.Itoa(c.Updated), strconv.Itoa(c.Failed), strconv.Itoa(c.Assigned),
			strconv.Itoa(c.Offline), strconv.Itoa(c.Waiting), strconv.Itoa(c.Reverted), started, done)
	}
	for i, wv := range r.Waves {
		row(strconv.Itoa(i+1), strconv.Itoa(wv.Percent)+"%", wv.Counts, a.maybeStamp(wv.StartedAt), a.maybeStamp(wv.DoneAt))
	}
	row("all", "", r.Totals, "", "")
	return t.flush()
}

func (a *app) rolloutsDevicesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "devices ROLLOUT",
		Short: "List a rollout's kiosks: wave, state, previous version, why it failed",
		Args:  args("ROLLOUT"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			return callHub(a, c, &p, "kiosks of rollout "+argv[0], func(ctx context.Context, hub *api.Client) (api.RolloutDevices, error) {
				ds, err := hub.RolloutDevices(ctx, argv[0])
				return api.RolloutDevices{Devices: nonNil(ds)}, err
			}, func(out api.RolloutDevices) error {
				t := newTable(a.env.Stdout, "DEVICE", "WAVE", "STATE", "PREVIOUS", "UPDATED", "ERROR")
				for _, d := range out.Devices {
					t.row(d.DeviceID, strconv.Itoa(d.Wave), d.State, orDash(d.Previous), a.stamp(d.UpdatedAt), printable(d.Error, false))
				}
				return t.flush()
			})
		},
	}
}

func (a *app) rolloutActCmd(action, short string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   action + " ROLLOUT [--reason R]",
		Short: short,
		Args:  args("ROLLOUT"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			if (action == "abort" || action == "rollback") && reason == "" {
				p.add("--reason is required to %s", action)
			}
			return callHub(a, c, &p, action+" rollout "+argv[0], func(ctx context.Context, hub *api.Client) (api.Rollout, error) {
				return hub.RolloutAct(ctx, argv[0], api.RolloutAction{Action: action, Reason: reason})
			}, a.rolloutTable)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required to abort or roll back)")
	return cmd
}

func (a *app) maybeStamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return a.stamp(t)
}

func (a *app) devicesTagCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "tag DEVICE TAG,...",
		Short:   "Set a kiosk's tags ('' removes them), for selecting kiosks in rollouts",
		Example: "  fleetctl devices tag k-7c2a9e01b3d4f5a6 pilot,lobby\n  fleetctl devices tag k-7c2a9e01b3d4f5a6 ''",
		Args:    args("DEVICE", "TAGS"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			var tags []string
			if argv[1] != "" {
				tags = strings.Split(argv[1], ",")
			}
			return callHub(a, c, &p, "tag "+argv[0], func(ctx context.Context, hub *api.Client) (api.Tags, error) {
				return hub.SetTags(ctx, argv[0], nonNil(tags))
			}, func(out api.Tags) error {
				_, err := fmt.Fprintf(a.env.Stdout, "%s tags: %s\n", argv[0], orDash(strings.Join(out.Tags, ",")))
				return err
			})
		},
	}
}
