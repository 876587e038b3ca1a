package fleetctl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

func (a *app) devicesCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "devices",
		Aliases: []string{"device", "dev"},
		Short:   "List, show, revoke and retire kiosks; tail their logs",
	})
	cmd.AddCommand(a.devicesListCmd(), a.devicesShowCmd(), a.devicesPresenceCmd(), a.devicesLogsCmd(), a.devicesRevokeCmd(), a.devicesRetireCmd(), a.devicesTagCmd())
	return cmd
}

func (a *app) devicesListCmd() *cobra.Command {
	var site, region, status string
	cmd := &cobra.Command{
		Use:   "list [--site S] [--region CODE] [--model M] [--status online|offline|retired]",
		Short: "List kiosks with presence, health and peripheral faults",
		Long: `List the fleet's kiosks, one line each:

  ID, SITE, REGION     where the kiosk stands
  STATUS               online, offline, or revoked
  LAST SEEN            when the hub last heard from it ("12s ago")
  AGENT                agent version
  HEALTH               from its latest heartbeat: CPU, memory use, disk free, unsent records
  FAULTS               peripherals that are not ok, e.g. "receipt0: paper-out"

Filters combine: --region is a GB/T 2260 code prefix (44 Guangdong, 4403 Shenzhen).`,
		Example: `  fleetctl devices list
  fleetctl devices list --region 4403 --status offline
  fleetctl devices list --site sz-futian-1 -o json`,
		Args: args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			if status != "" && status != "online" && status != "offline" && status != "retired" {
				p.add("--status %q: want online, offline or retired", status)
			}
			if region != "" && (!isDigits(region) || len(region) > 6) {
				p.add("--region %q: want 1 to 6 digits of a GB/T 2260 code", region)
			}
			return callHub(a, c, &p, "list devices", func(ctx context.Context, hub *api.Client) (api.Devices, error) {
				devs, err := hub.ListDevices(ctx, api.DeviceQuery{Site: site, Region: region, Status: status})
				return api.Devices{Devices: nonNil(devs)}, err
			}, func(out api.Devices) error {
				now := a.env.Now()
				t := newTable(a.env.Stdout, "ID", "SITE", "REGION", "STATUS", "LAST SEEN", "AGENT", "HEALTH", "FAULTS")
				for _, d := range out.Devices {
					t.row(d.ID, d.SiteID, d.Region, presence(d), ago(now, d.LastSeen), d.AgentVersion,
						healthSummary(d.Health), faultSummary(d.Peripherals))
				}
				return t.flush()
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&site, "site", "", "only kiosks of this site ID")
	f.StringVar(&region, "region", "", "only kiosks whose region code starts with this")
	f.StringVar(&status, "status", "", "only online, offline or retired kiosks (default: every kiosk in service)")
	return cmd
}

func presence(d fleet.Device) string {
	switch {
	case !d.RetiredAt.IsZero():
		return "retired"
	case d.Revoked:
		return "revoked"
	case d.Online:
		return "online"
	}
	return "offline"
}

func (a *app) devicesShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show ID",
		Aliases: []string{"get"},
		Short:   "Show one kiosk: presence, health, peripherals, desired vs reported state, recent commands",
		Long: `Show everything the hub knows about one kiosk: presence with timestamps, certificate,
latest health and peripheral status, the desired configuration against what the kiosk reports
(drift is flagged), and its most recent commands.`,
		Example: `  fleetctl devices show k-7c2a9e01b3d4f5a6`,
		Args:    args("ID"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			return callHub(a, c, &p, "show device "+argv[0], func(ctx context.Context, hub *api.Client) (api.DeviceDetail, error) {
				det, err := hub.Device(ctx, argv[0])
				det.Commands = nonNil(det.Commands)
				return det, err
			}, a.printDevice)
		},
	}
}

func (a *app) printDevice(det api.DeviceDetail) error {
	now, d, w := a.env.Now(), det.Device, a.env.Stdout
	kv := newTable(w)
	kv.row("Device:", d.ID)
	kv.row("Site:", d.SiteID+" (region "+d.Region+")")
	kv.row("Model:", d.Model)
	switch {
	case d.Revoked:
		kv.row("Status:", "REVOKED "+a.stamp(d.RevokedAt))
	case d.Online:
		kv.row("Status:", "online since "+a.stamp(d.PresenceAt))
	default:
		kv.row("Status:", "offline since "+a.stamp(d.PresenceAt))
	}
	kv.row("Last seen:", a.stamp(d.LastSeen))
	kv.row("Agent:", d.AgentVersion)
	kv.row("Enrolled:", a.stamp(d.EnrolledAt))
	kv.row("Certificate:", "serial "+d.CertSerial+", expires "+a.stamp(d.CertExpiry))
	if err := kv.flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nHealth (%s):\n", ago(now, d.HealthAt))
	if isEmpty(d.Health) {
		fmt.Fprintln(w, "  no heartbeat yet")
	} else {
		t := newTable(w)
		for _, l := range healthLines(d.Health) {
			t.row("  "+l[0]+":", l[1])
		}
		t.flush()
	}

	fmt.Fprintf(w, "\nPeripherals (%s):\n", ago(now, d.PeriphAt))
	if ps, err := api.DecodePeripherals(d.Peripherals); isEmpty(d.Peripherals) {
		fmt.Fprintln(w, "  none reported")
	} else if err != nil {
		fmt.Fprintf(w, "  unreadable (%v): %s\n", err, compact(d.Peripherals, 300))
	} else {
		t := newTable(w, "  ID", "CLASS", "MODEL", "STATUS", "REASONS", "DETAIL")
		for _, p := range ps.Devices {
			st := string(p.Status)
			if !p.Connected {
				st = "disconnected"
			}
			if faulty(p) {
				st = strings.ToUpper(st)
			}
			t.row("  "+p.ID, p.Class, strings.TrimSpace(p.Manufacturer+" "+p.Model), st, strings.Join(p.Reasons, ","), detail(p))
		}
		t.flush()
	}

	fmt.Fprintln(w, "\nState:")
	a.printState(det.Desired, det.Reported, det.Drift, "  ")

	fmt.Fprintln(w, "\nRecent commands:")
	if len(det.Commands) == 0 {
		fmt.Fprintln(w, "  none")
		return nil
	}
	return a.commandTable(det.Commands, "  ")
}

// printState shows desired against reported state, flagging drift, with both documents.
func (a *app) printState(desired, reported *fleet.DocState, drift bool, indent string) {
	w := a.env.Stdout
	t := newTable(w)
	for _, s := range []struct {
		name string
		st   *fleet.DocState
	}{{"desired", desired}, {"reported", reported}} {
		if s.st == nil {
			t.row(indent+s.name, "none")
			continue
		}
		row := []string{indent + s.name, fmt.Sprintf("v%d", s.st.Version), a.stamp(s.st.UpdatedAt)}
		if s.st.Error != "" {
			row = append(row, "error: "+s.st.Error)
		}
		t.row(row...)
	}
	t.flush()
	switch {
	case drift && desired != nil && reported != nil && reported.Error != "":
		fmt.Fprintf(w, "%sDRIFT: desired v%d, kiosk reports v%d and an error\n", indent, desired.Version, reported.Version)
	case drift && desired != nil && reported != nil:
		fmt.Fprintf(w, "%sDRIFT: desired v%d, kiosk reports v%d\n", indent, desired.Version, reported.Version)
	case drift && desired != nil:
		fmt.Fprintf(w, "%sDRIFT: desired v%d, kiosk has reported nothing yet\n", indent, desired.Version)
	case drift:
		fmt.Fprintf(w, "%sDRIFT\n", indent)
	case desired != nil:
		fmt.Fprintf(w, "%sin sync at v%d\n", indent, desired.Version)
	}
	for _, s := range []struct {
		name string
		st   *fleet.DocState
	}{{"desired", desired}, {"reported", reported}} {
		if s.st != nil && len(s.st.Doc) > 0 {
			fmt.Fprintf(w, "%s%s doc:\n%s\n", indent, s.name, indentJSON(s.st.Doc, indent+"  "))
		}
	}
}

func (a *app) devicesPresenceCmd() *cobra.Command {
	limit := 20
	cmd := &cobra.Command{
		Use:   "presence ID [--limit N]",
		Short: "Show a kiosk's presence history: its sessions with the hub and why each ended",
		Long: `Show a kiosk's presence now and its latest ended sessions with the hub, newest first:

  ENDED       when the session ended (hub clock)
  REASON      clean (the agent stopped and said goodbye), keepalive_timeout (nothing heard for
              1.5 keep-alives: power or network lost), network_reset (the connection closed or
              reset without goodbye: agent killed, router reset), revoked, replaced (a newer
              connection of the kiosk took over), shutdown (the hub stopped), protocol_error,
              hub_lost (the hub holding it died)
  DURATION    how long the session lasted
  REPLICA     the hub replica that held it
  DETAIL      the error the hub saw`,
		Example: `  fleetctl devices presence k-7c2a9e01b3d4f5a6
  fleetctl devices presence k-7c2a9e01b3d4f5a6 --limit 100 -o json`,
		Args: args("ID"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			if limit < 1 || limit > 200 {
				p.add("--limit %d: want 1 to 200", limit)
			}
			return callHub(a, c, &p, "presence of device "+argv[0], func(ctx context.Context, hub *api.Client) (api.Presence, error) {
				pr, err := hub.Presence(ctx, argv[0], limit)
				pr.Sessions = nonNil(pr.Sessions)
				return pr, err
			}, func(pr api.Presence) error {
				st := "offline since "
				if pr.Online {
					st = "online since "
				}
				fmt.Fprintf(a.env.Stdout, "%s %s%s\n\n", pr.DeviceID, st, a.stamp(pr.PresenceAt))
				t := newTable(a.env.Stdout, "ENDED", "REASON", "DURATION", "REPLICA", "DETAIL")
				for _, s := range pr.Sessions {
					t.row(a.stamp(s.EndedAt), string(s.Reason), (time.Duration(s.DurationMs) * time.Millisecond).Round(time.Second).String(),
						s.Replica, printable(s.Detail, false))
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", limit, "how many sessions to show, newest first (1..200)")
	return cmd
}

func (a *app) devicesRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a kiosk's certificate and cut its connection",
		Long: `Revoke a kiosk: the hub marks it revoked, rejects its certificate and disconnects it. It cannot
connect again until it is enrolled anew with a fresh enrollment token. Use it for a stolen or
decommissioned kiosk. Revoking a revoked kiosk succeeds again. With -o json it prints the device.`,
		Example: `  fleetctl devices revoke k-7c2a9e01b3d4f5a6`,
		Args:    args("ID"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			return callHub(a, c, &p, "revoke device "+argv[0], func(ctx context.Context, hub *api.Client) (fleet.Device, error) {
				return hub.Revoke(ctx, argv[0])
			}, func(fleet.Device) error {
				_, err := fmt.Fprintf(a.env.Stdout, "device %s revoked\n", argv[0])
				return err
			})
		},
	}
}

func (a *app) devicesRetireCmd() *cobra.Command {
	var req api.RetireDevices
	count := -1
	cmd := &cobra.Command{
		Use:   "retire [ID...] [--site S] [--region CODE] [--model M] [--offline-for D] [--count N]",
		Short: "Take kiosks out of service for good (in bulk, by filter)",
		Long: `Retire kiosks: the hub revokes them, cuts their connections and lists them from then on only
with "devices list --status retired"; their records stay. A retired kiosk comes back only by a new
enrollment. Use it for kiosks taken away, or for simulated ones (fleetsim) after a load test.

Select kiosks by ID and/or filters (they combine). Without --count nothing is retired: the command
lists what matches and prints the line that retires exactly those. With --count N the hub retires
them only if exactly N still match (otherwise nothing, and an error), so that what you confirmed
is what happens. Needs the admin role.`,
		Example: `  fleetctl devices retire --model fleetsim                   # shows how many, and the line to run
  fleetctl devices retire --model fleetsim --count 1000
  fleetctl devices retire --site sz-futian-1 --offline-for 720h --count 3
  fleetctl devices retire k-7c2a9e01b3d4f5a6 --count 1`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			req.IDs = argv
			for _, id := range argv {
				if !api.ValidDeviceID(id) {
					p.add("%q is not a device ID", id)
				}
			}
			if req.Region != "" && (!isDigits(req.Region) || len(req.Region) > 6) {
				p.add("--region %q: want 1 to 6 digits of a GB/T 2260 code", req.Region)
			}
			if len(argv) == 0 && req.Site == "" && req.Region == "" && req.Model == "" && req.OfflineFor == "" {
				p.add("name the kiosks to retire: IDs, --site, --region, --model or --offline-for")
			}
			req.DryRun = count < 0
			if count >= 0 {
				req.Expect = &count
			}
			return callHub(a, c, &p, "retire devices", func(ctx context.Context, hub *api.Client) (api.Retired, error) {
				return hub.RetireDevices(ctx, req)
			}, func(r api.Retired) error { return a.printRetired(c, r) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Site, "site", "", "kiosks of this site ID")
	f.StringVar(&req.Region, "region", "", "kiosks whose region code starts with this")
	f.StringVar(&req.Model, "model", "", "kiosks of this model (fleetsim's kiosks: fleetsim)")
	f.StringVar(&req.OfflineFor, "offline-for", "", "kiosks offline and not heard from for at least this long (e.g. 720h)")
	f.IntVar(&count, "count", -1, "retire only if exactly this many kiosks match (the count a dry run showed)")
	return cmd
}

// printRetired shows a retirement or, for a dry run, what matches and the line that retires it.
func (a *app) printRetired(c *cobra.Command, r api.Retired) error {
	w := a.env.Stdout
	const shown = 20
	for i, id := range r.Devices {
		if i == shown {
			fmt.Fprintf(w, "  ... and %d more\n", len(r.Devices)-shown)
			break
		}
		fmt.Fprintln(w, "  "+id)
	}
	if !r.DryRun {
		_, err := fmt.Fprintf(w, "%d kiosks retired\n", r.Count)
		return err
	}
	if r.Count == 0 {
		_, err := fmt.Fprintln(w, "no kiosk in service matches: nothing to retire")
		return err
	}
	line := []string{"fleetctl", "devices", "retire"}
	line = append(line, c.Flags().Args()...)
	own := c.LocalNonPersistentFlags() // not --hub, --token, -o...: those are the caller's own
	c.Flags().Visit(func(f *pflag.Flag) {
		if f.Name != "count" && own.Lookup(f.Name) != nil {
			line = append(line, "--"+f.Name, f.Value.String())
		}
	})
	_, err := fmt.Fprintf(w, "%d kiosks match; nothing retired yet. To retire exactly these:\n  %s --count %d\n",
		r.Count, strings.Join(line, " "), r.Count)
	return err
}
