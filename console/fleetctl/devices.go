package fleetctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

func (a *app) devicesCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "devices",
		Aliases: []string{"device", "dev"},
		Short:   "List, show and revoke kiosks",
	})
	cmd.AddCommand(a.devicesListCmd(), a.devicesShowCmd(), a.devicesRevokeCmd())
	return cmd
}

func (a *app) devicesListCmd() *cobra.Command {
	var site, region, status string
	cmd := &cobra.Command{
		Use:   "list [--site S] [--region CODE] [--status online|offline]",
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
			if status != "" && status != "online" && status != "offline" {
				p.add("--status %q: want online or offline", status)
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
	f.StringVar(&status, "status", "", "only online or only offline kiosks")
	return cmd
}

func presence(d fleet.Device) string {
	switch {
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
