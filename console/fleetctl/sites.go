package fleetctl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

func (a *app) sitesCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "sites",
		Aliases: []string{"site"},
		Short:   "List and create sites (service halls where kiosks stand)",
	})
	cmd.AddCommand(a.sitesListCmd(), a.sitesCreateCmd())
	return cmd
}

func (a *app) sitesCreateCmd() *cobra.Command {
	var s fleet.Site
	cmd := &cobra.Command{
		Use:   "create --id ID --name NAME --region CODE [--address ADDR]",
		Short: "Create a site (needs the admin role)",
		Long: `Create a site: a service hall or other place where kiosks stand. Kiosks are enrolled into a
site and take its region. --region is the six-digit GB/T 2260 administrative division code of the
district (440304 is Futian, Shenzhen).`,
		Example: `  fleetctl sites create --id sz-futian-1 --name "Futian Citizen Service Centre" --region 440304 \
      --address "Fuzhong 3rd Road 8"`,
		Args: args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			p.required([2]string{"--id", s.ID}, [2]string{"--name", s.Name}, [2]string{"--region", s.Region})
			if s.Region != "" && (len(s.Region) != 6 || !isDigits(s.Region)) {
				p.add("--region %q: want a six-digit GB/T 2260 code such as 440304", s.Region)
			}
			return callHub(a, c, &p, "create site "+s.ID, func(ctx context.Context, hub *api.Client) (fleet.Site, error) {
				return hub.CreateSite(ctx, s)
			}, func(out fleet.Site) error { return a.siteTable([]fleet.Site{out}) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&s.ID, "id", "", "site ID: lowercase letters, digits and dashes (required)")
	f.StringVar(&s.Name, "name", "", "display name (required)")
	f.StringVar(&s.Region, "region", "", "six-digit GB/T 2260 region code (required)")
	f.StringVar(&s.Address, "address", "", "street address")
	return cmd
}

func (a *app) sitesListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List sites",
		Example: `  fleetctl sites list`,
		Args:    args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			return callHub(a, c, &p, "list sites", func(ctx context.Context, hub *api.Client) (api.Sites, error) {
				sites, err := hub.ListSites(ctx)
				return api.Sites{Sites: nonNil(sites)}, err
			}, func(out api.Sites) error { return a.siteTable(out.Sites) })
		},
	}
}

func (a *app) siteTable(sites []fleet.Site) error {
	t := newTable(a.env.Stdout, "ID", "NAME", "REGION", "ADDRESS")
	for _, s := range sites {
		t.row(s.ID, s.Name, s.Region, s.Address)
	}
	return t.flush()
}

func (a *app) tokensCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "tokens",
		Aliases: []string{"token"},
		Short:   "Create enrollment tokens for new kiosks",
	})
	var site, ttl string
	create := &cobra.Command{
		Use:   "create --site S [--ttl 24h]",
		Short: "Create a one-time enrollment token and print the kiosk's enroll command",
		Long: `Create a one-time enrollment token for a site and print the command to run on the new kiosk.
The token enrolls exactly one kiosk, into that site, and expires after --ttl (at most 720h). The
hub keeps only its hash: copy it now, it cannot be shown again.

The token is kfe_<secret>.<pin>: the pin is the SHA-256 of the hub CA's public key, which the
kiosk checks the hub against before it sends the secret, and then trusts (so the kiosk needs no
CA file, and a machine in the middle gets nothing). Copy the whole token.

The printed command uses --hub as given here; if the kiosk reaches the hub under another address,
change it before running it.`,
		Example: `  fleetctl --hub https://hub.example.gov.cn tokens create --site sz-futian-1 --ttl 2h`,
		Args:    args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			p.required([2]string{"--site", site})
			p.duration("--ttl", ttl, time.Minute)
			return callHub(a, c, &p, "create enrollment token for site "+site, func(ctx context.Context, hub *api.Client) (api.Token, error) {
				return hub.CreateToken(ctx, api.CreateToken{SiteID: site, TTL: ttl})
			}, func(tok api.Token) error {
				w := a.env.Stdout
				fmt.Fprintf(w, "Enrollment token %s for site %s, valid until %s (one use), pinning the hub CA %s:\n  %s\n\n",
					tok.ID, tok.SiteID, a.stamp(tok.ExpiresAt), tok.CAHash, tok.Secret)
				fmt.Fprintf(w, "Run on the kiosk:\n  kiosk-agent enroll --hub %s --token %s\n",
					shellQuote(a.client.BaseURL), shellQuote(tok.Secret))
				if a.loopbackHub() {
					fmt.Fprintf(a.env.Stderr, "note: %s is this machine's loopback address; give the kiosk an address it can reach\n", a.client.BaseURL)
				}
				return nil
			})
		},
	}
	create.Flags().StringVar(&site, "site", "", "site ID the kiosk will belong to (required)")
	create.Flags().StringVar(&ttl, "ttl", "24h", "how long the token stays valid")
	cmd.AddCommand(create)
	return cmd
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe characters.
func shellQuote(s string) string {
	safe := s != ""
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:/=+@%,", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
