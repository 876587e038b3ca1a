package fleetctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

func (a *app) clientsCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "clients",
		Aliases: []string{"client"},
		Short:   "Register and list the channels that log in through the hub (needs an admin login)",
		Long: `Manage the clients (channels) registered at the hub's OpenID Provider: web portal, mobile app,
mini-program, kiosk shell, fleet console, fleetctl. These commands use the provider's admin API,
which takes an access token of an account with the admin role (fleetctl login), not the hub's
bootstrap token.

A registration cannot be changed in place (the API offers list, show, create and delete): to change
one, delete it and create it again; a confidential client then gets a new secret.`,
	})
	cmd.AddCommand(a.clientsListCmd(), a.clientsShowCmd(), a.clientsCreateCmd(), a.clientsDeleteCmd())
	return cmd
}

func (a *app) clientsListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List registered clients",
		Example: `  fleetctl clients list`,
		Args:    args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			return callHub(a, c, &p, "list clients", func(ctx context.Context, hub *api.Client) (api.Clients, error) {
				cs, err := hub.ListClients(ctx)
				return api.Clients{Clients: nonNil(cs)}, err
			}, func(out api.Clients) error {
				t := newTable(a.env.Stdout, "ID", "NAME", "TYPE", "AUTH", "GRANTS", "REDIRECT URIS")
				for _, r := range out.Clients {
					t.row(r.ID, r.Name, r.AppType, clientAuth(r), shortGrants(r.GrantTypes), strings.Join(r.RedirectURIs, " "))
				}
				return t.flush()
			})
		},
	}
}

func (a *app) clientsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show ID",
		Aliases: []string{"get"},
		Short:   "Show one registered client",
		Example: `  fleetctl clients show web-portal`,
		Args:    args("ID"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			return callHub(a, c, &p, "show client "+argv[0], func(ctx context.Context, hub *api.Client) (api.ClientRegistration, error) {
				return hub.ClientRegistration(ctx, argv[0])
			}, a.clientDetail)
		},
	}
}

func (a *app) clientsCreateCmd() *cobra.Command {
	var r api.ClientRegistration
	cmd := &cobra.Command{
		Use:   "create ID [--name N] [--app-type web|native|user_agent] [--redirect-uri U]... [--grant-type G]... [--confidential]",
		Short: "Register a client; a confidential one's secret is shown once",
		Long: `Register a client (channel) at the hub's OpenID Provider. The provider checks the registration
and answers with its reason if it refuses it: the ID has 1 to 64 characters without spaces, '/',
':', '?' or '#'; redirect URIs are absolute, without fragment or wildcard; the grant types offered
are authorization_code, refresh_token, urn:ietf:params:oauth:grant-type:device_code and
urn:ietf:params:oauth:grant-type:jwt-bearer. --app-type defaults to web. A client that is not
first-party always gets pairwise subjects.

A client gets only the scopes it is registered for (--scope; openid when none is given): a
request for more is narrowed to them. Its tokens are accepted by the fleet API only if it is
registered for that resource (--resource, the hub's issuer URL followed by /api/v1) and asks for
it; a department's app is registered without.

With --confidential the provider makes a client secret. fleetctl prints it this one time (also
with -o json); the provider keeps only its hash, so copy it now.`,
		Example: `  fleetctl clients create web-portal --name "Citizen web portal" --confidential \
      --redirect-uri https://portal.example.gov.cn/callback \
      --grant-type authorization_code --grant-type refresh_token
  fleetctl clients create mobile-app --name "Mobile app" --app-type native \
      --redirect-uri cn.gov.example.app:/callback --grant-type authorization_code`,
		Args: args("ID"),
		RunE: func(c *cobra.Command, argv []string) error {
			r.ID = argv[0]
			r.Secret = ""
			var p problems
			return callHub(a, c, &p, "create client "+r.ID, func(ctx context.Context, hub *api.Client) (api.ClientRegistration, error) {
				return hub.RegisterClient(ctx, r)
			}, func(out api.ClientRegistration) error {
				if err := a.clientDetail(out); err != nil {
					return err
				}
				if out.Secret != "" {
					fmt.Fprintf(a.env.Stdout, "\nClient secret (shown this once only; the hub keeps just its hash):\n  %s\n", printable(out.Secret, false))
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.Name, "name", "", "display name")
	f.StringVar(&r.AppType, "app-type", "", "web, native or user_agent (the provider's default: web)")
	f.StringArrayVar(&r.RedirectURIs, "redirect-uri", nil, "allowed redirect URI (repeat for more)")
	f.StringArrayVar(&r.PostLogoutURIs, "post-logout-uri", nil, "allowed post-logout redirect URI (repeat for more)")
	f.StringArrayVar(&r.GrantTypes, "grant-type", nil, "allowed OAuth grant type, by its full name (repeat for more)")
	f.BoolVar(&r.FirstParty, "first-party", false, "first-party client: consent is not asked")
	f.BoolVar(&r.Pairwise, "pairwise", false, "pairwise subjects (always on for clients that are not first-party)")
	f.StringVar(&r.Sector, "sector", "", "pairwise sector: clients of one sector see the same subjects")
	f.BoolVar(&r.KioskOnly, "kiosk-only", false, "the kiosk shell: short sessions, never refreshable")
	f.StringArrayVar(&r.Scopes, "scope", nil, "scope the client may be granted: openid (the provider's default), profile, offline_access (repeat for more)")
	f.StringArrayVar(&r.Resources, "resource", nil, "API the client may ask tokens for (RFC 8707), e.g. HUB/api/v1 for the fleet API; leave out for a department's app")
	f.BoolVar(&r.Confidential, "confidential", false, "confidential client: the provider makes a secret (shown once)")
	return cmd
}

func (a *app) clientsDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete ID",
		Aliases: []string{"rm"},
		Short:   "Delete a client registration",
		Example: `  fleetctl clients delete old-portal`,
		Args:    args("ID"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			return callHub(a, c, &p, "delete client "+argv[0], func(ctx context.Context, hub *api.Client) (deleted, error) {
				return deleted{ID: argv[0], Deleted: true}, hub.DeleteClient(ctx, argv[0])
			}, func(deleted) error {
				_, err := fmt.Fprintf(a.env.Stdout, "Deleted client %s\n", printable(argv[0], false))
				return err
			})
		},
	}
}

// shortGrants names grant types for a table: the URN ones by their last part (device_code,
// jwt-bearer); get and -o json show them in full.
func shortGrants(gs []string) string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = strings.TrimPrefix(g, "urn:ietf:params:oauth:grant-type:")
	}
	return strings.Join(out, ",")
}

// deleted is what -o json shows for a deletion, which the API answers with no body.
type deleted struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

func clientAuth(r api.ClientRegistration) string {
	if r.Confidential {
		return "confidential"
	}
	return "public"
}

func (a *app) clientDetail(r api.ClientRegistration) error {
	t := newTable(a.env.Stdout)
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	t.row("ID:", r.ID)
	t.row("Name:", r.Name)
	t.row("App type:", r.AppType)
	t.row("Auth:", clientAuth(r))
	t.row("First party:", yes(r.FirstParty))
	t.row("Pairwise:", yes(r.Pairwise))
	t.row("Sector:", r.Sector)
	t.row("Kiosk only:", yes(r.KioskOnly))
	t.row("Grant types:", strings.Join(r.GrantTypes, ", "))
	t.row("Scopes:", strings.Join(r.Scopes, " "))
	t.row("Resources:", strings.Join(r.Resources, " "))
	t.row("Redirect URIs:", strings.Join(r.RedirectURIs, " "))
	t.row("Post-logout URIs:", strings.Join(r.PostLogoutURIs, " "))
	return t.flush()
}
