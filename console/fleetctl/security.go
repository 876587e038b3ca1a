package fleetctl

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

func (a *app) securityEventsCmd() *cobra.Command {
	var q api.SecurityQuery
	var since, limit string
	cmd := &cobra.Command{
		Use:   "security-events [--device ID] [--staff USER] [--kind KIND] [--since DURATION|TIME]",
		Short: "List security events: refused logins, ACL and TLS refusals, revocations, journal breaks",
		Long: `List the hub's security events, the newest first: password logins refused and accounts
locked (login.*), MQTT refusals (mqtt.acl-denied, mqtt.connect-refused, mqtt.session-cut), TLS
handshakes refused (tls.refused, tls.cert-refused), kiosks revoked (device.revoked), staff actions
refused (api.forbidden) and breaks in kiosks' transaction journals (journal.*).

Refusals are counted per kind, kiosk, staff member, client address and minute: COUNT says how
many a row stands for, FROM "*" that they came from more addresses than the hub keeps apart.
--kind takes a kind (login.failed) or a family (login). --since takes a duration back from now
(24h, the default) or an RFC 3339 time. A staff member with a region scope sees the events of
their kiosks and their own.`,
		Example: `  fleetctl security-events --kind login --since 1h
  fleetctl security-events --device k-7c2a9e01b3d4f5a6 --since 168h
  fleetctl security-events --staff nanshan1 -o json`,
		Args: args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			switch d, err := time.ParseDuration(since); {
			case err == nil && d > 0:
				q.Since = a.env.Now().Add(-d)
			case err == nil:
				p.add("--since %q: want a duration back from now (24h) or an RFC 3339 time", since)
			default:
				t, err := time.Parse(time.RFC3339, since)
				if err != nil {
					p.add("--since %q: want a duration back from now (24h) or an RFC 3339 time", since)
				}
				q.Since = t
			}
			q.Limit = int(p.int("--limit", limit, 1, 1000))
			q.Newest = true
			return callHub(a, c, &p, "list security events", func(ctx context.Context, hub *api.Client) (api.SecurityEvents, error) {
				out, err := hub.ListSecurityEvents(ctx, q)
				out.Events = nonNil(out.Events)
				return out, err
			}, func(out api.SecurityEvents) error {
				t := newTable(a.env.Stdout, "LAST", "KIND", "KIOSK", "STAFF", "FROM", "COUNT", "DETAIL")
				for _, e := range out.Events {
					t.row(a.stamp(e.Last), e.Kind, e.DeviceID, e.Staff, e.Source, fmt.Sprint(e.Count), printable(e.Detail, false))
				}
				return t.flush()
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.Device, "device", "", "only this kiosk's events")
	f.StringVar(&q.Staff, "staff", "", "only the events concerning this staff member (username)")
	f.StringVar(&q.Kind, "kind", "", "only this kind (login.failed) or family (login)")
	f.StringVar(&since, "since", "24h", "how far back: a duration (24h) or an RFC 3339 time")
	f.StringVar(&limit, "limit", "200", "at most this many events (1..1000)")
	return cmd
}
