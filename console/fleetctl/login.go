package fleetctl

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// ClientID is fleetctl's client registration at the hub's OpenID Provider.
const ClientID = "fleetctl"

func (a *app) loginCmd() *cobra.Command {
	var save string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in as a staff member (device authorization grant) and save the access token",
		Long: `Log in to the hub's OpenID Provider with the device authorization grant (RFC 8628): fleetctl
shows a verification URL and a short code; open the URL on any device (phone or PC), log in as
yourself and approve. The access token is saved (mode 0600) to --save, by default the file in
KF_TOKEN_FILE or ~/.config/kioskfleet/token; point KF_TOKEN_FILE at it for the next commands.
Access tokens are short-lived: log in again when the hub answers unauthorized.`,
		Example: `  fleetctl --hub https://127.0.0.1:8080 --ca var/hub/ca/ca.crt login
  export KF_TOKEN_FILE=~/.config/kioskfleet/token`,
		Args: args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			if err := a.setup(c, &p); err != nil {
				return err
			}
			if save == "" {
				save = a.env.Getenv("KF_TOKEN_FILE")
			}
			if save == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					return usagef("--save: no home folder to default to: %v", err)
				}
				save = filepath.Join(home, ".config", "kioskfleet", "token")
			}
			return a.login(c.Context(), save)
		},
	}
	cmd.Flags().StringVar(&save, "save", "", "file to save the access token in (default: KF_TOKEN_FILE or ~/.config/kioskfleet/token)")
	return cmd
}

func (a *app) login(ctx context.Context, save string) error {
	var disc struct {
		Issuer     string `json:"issuer"`
		DeviceAuth string `json:"device_authorization_endpoint"`
		Token      string `json:"token_endpoint"`
	}
	dctx, cancel := context.WithTimeout(ctx, a.perCall)
	defer cancel()
	req, err := http.NewRequestWithContext(dctx, http.MethodGet, a.client.BaseURL+"/.well-known/openid-configuration", nil)
	if err != nil {
		return err
	}
	resp, err := a.client.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("login: discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("login: discovery: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&disc); err != nil || disc.Issuer == "" || disc.DeviceAuth == "" || disc.Token == "" {
		return fmt.Errorf("login: the hub does not offer the device authorization grant (discovery: %v)", err)
	}
	conf := oauth2.Config{ClientID: ClientID, Scopes: []string{"openid", "profile"},
		Endpoint: oauth2.Endpoint{DeviceAuthURL: disc.DeviceAuth, TokenURL: disc.Token, AuthStyle: oauth2.AuthStyleInParams}}
	octx := context.WithValue(ctx, oauth2.HTTPClient, a.client.HTTP)
	// The token is asked for the fleet API (RFC 8707 resource indicator): the hub's API refuses
	// tokens issued for anything else.
	da, err := conf.DeviceAuth(octx, oauth2.SetAuthURLParam("resource", api.FleetResource(disc.Issuer)))
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	link := da.VerificationURIComplete
	if link == "" {
		link = da.VerificationURI
	}
	fmt.Fprintf(a.env.Stderr, "To log in, open %s\nand check that it shows the code %s; approve it there. Waiting...\n", link, da.UserCode)
	tok, err := conf.DeviceAccessToken(octx, da)
	if err != nil {
		return &commandError{"login: " + err.Error()}
	}
	if err := os.MkdirAll(filepath.Dir(save), 0o700); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if err := os.WriteFile(save, []byte(tok.AccessToken+"\n"), 0o600); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if a.json {
		return a.emitJSON(struct {
			TokenFile string    `json:"tokenFile"`
			ExpiresAt time.Time `json:"expiresAt"`
		}{save, tok.Expiry})
	}
	fmt.Fprintf(a.env.Stdout, "logged in; access token saved to %s (valid until %s)\nuse it with: export KF_TOKEN_FILE=%s\n",
		save, a.stamp(tok.Expiry), save)
	return nil
}
