package server

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/connector"
	"github.com/kioskfleet/kioskfleet/hub/identity/sms"
)

// Citizens configures the citizens' logins of the OpenID Provider (hub/identity): where phone
// codes are sent, the passkeys' relying party, and the upstream identity providers.
type Citizens struct {
	// SMSGatewayURL and SMSGatewayKey: the HTTP SMS gateway (sms.Gateway) that sends the
	// one-time codes of the phone login. Neither: no phone login.
	SMSGatewayURL, SMSGatewayKey string
	// SMSDevFile appends codes, in clear, to a file instead: for development only, never in
	// production. It is never used unless given.
	SMSDevFile string
	// PasskeyRPID is the passkeys' relying party ID (default: the public URL's host; passkeys
	// are off when that is an IP address); PasskeyOrigins are origins accepted besides the
	// public URL's (a portal on a subdomain, the mobile app's android:apk-key-hash:...).
	PasskeyRPID    string
	PasskeyOrigins []string
	// ConnectorsFile names the upstream identity providers (OIDC, 微信, 支付宝) citizens may log
	// in with: a YAML file as hub/identity/connector.File describes. None: no federation.
	ConnectorsFile string
}

func (c Citizens) validate() error {
	var errs []error
	switch {
	case c.SMSGatewayURL != "" && c.SMSDevFile != "":
		errs = append(errs, errors.New("sms: a gateway url and a dev file: choose one"))
	case c.SMSGatewayURL != "":
		if _, err := sms.NewGateway(c.SMSGatewayURL, c.SMSGatewayKey, nil); err != nil {
			errs = append(errs, err)
		}
	case c.SMSGatewayKey != "":
		errs = append(errs, errors.New("sms: a gateway key without a gateway url"))
	}
	if c.PasskeyRPID != "" && net.ParseIP(c.PasskeyRPID) != nil {
		errs = append(errs, fmt.Errorf("passkey rp id: %q: WebAuthn needs a domain, not an IP address", c.PasskeyRPID))
	}
	for _, o := range c.PasskeyOrigins {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" {
			errs = append(errs, fmt.Errorf("passkey origins: %q: want https://host[:port] or an app origin (android:apk-key-hash:...)", o))
		}
	}
	if c.ConnectorsFile != "" {
		if _, err := connector.Load(c.ConnectorsFile, nil); err != nil {
			errs = append(errs, fmt.Errorf("connectors file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// apply sets the citizens' part of the provider's configuration.
func (c Citizens) apply(ic *identity.Config) error {
	var err error
	switch {
	case c.SMSGatewayURL != "":
		ic.SMS, err = sms.NewGateway(c.SMSGatewayURL, c.SMSGatewayKey, nil)
	case c.SMSDevFile != "":
		ic.SMS, err = sms.NewDevFile(c.SMSDevFile)
	}
	ic.PasskeyRPID, ic.PasskeyOrigins = c.PasskeyRPID, c.PasskeyOrigins
	if err != nil || c.ConnectorsFile == "" {
		return err
	}
	cs, err := connector.Load(c.ConnectorsFile, nil)
	if err != nil {
		return err
	}
	for _, cc := range cs {
		conn, err := connector.Open(cc)
		if err != nil {
			return err
		}
		ic.Upstreams = append(ic.Upstreams, identity.Upstream{ID: cc.ID, Name: cc.Name, Connector: conn})
	}
	return nil
}
