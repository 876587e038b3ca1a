package identity

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// ErrLogin is the one answer to a failed password login, whatever the cause (unknown account,
// wrong password, throttled, locked), so that it does not reveal whether an account exists.
var ErrLogin = errors.New("identity: wrong username or password, or too many attempts; try again later")

// Kinds of the refusals told to Config.OnRefused.
const (
	LoginFailed    = "login.failed"          // a wrong password for an account
	LoginUnknown   = "login.unknown-account" // a password for no account
	LoginThrottled = "login.throttled"       // refused unchecked: the account waits after failures
	LoginLocked    = "login.locked"          // the account is locked (too many failures), or just was
	RateLimited    = "identity.rate-limited" // a request refused for its address's rate (429)
)

type sourceKey struct{}

// withSource keeps the client's address in ctx for the refusals told to Config.OnRefused.
func withSource(ctx context.Context, addr netip.Addr) context.Context {
	return context.WithValue(ctx, sourceKey{}, addr)
}

// refused tells Config.OnRefused of a refusal of a login to a (zero: no account).
func (p *Provider) refused(ctx context.Context, kind string, a store.Account) {
	if p.cfg.OnRefused == nil {
		return
	}
	staff, source := "", ""
	if a.Kind == "staff" {
		staff = a.Username
	}
	if addr, ok := ctx.Value(sourceKey{}).(netip.Addr); ok && addr.IsValid() {
		source = addr.String()
	}
	p.cfg.OnRefused(kind, staff, source)
}

// NewStaff describes a staff account to create (the admin API's api.StaffRequest).
type NewStaff struct {
	Username   string
	Name       string
	Password   string
	Roles      []string
	Regions    []string // region scope (fleet.CheckScope); empty: everywhere
	Department string   // required with the developer role
}

// CreateStaff creates a staff account with a password.
func (p *Provider) CreateStaff(ctx context.Context, s NewStaff) (store.Account, error) {
	if s.Username == "" || len(s.Username) > 64 {
		return store.Account{}, fmt.Errorf("%w: username must have 1 to 64 characters", store.ErrInvalid)
	}
	// NIST SP 800-63B §5.1.1.2: at least 8 characters, at most 64 need be accepted.
	if len(s.Password) < 8 || len(s.Password) > 256 {
		return store.Account{}, fmt.Errorf("%w: password must have 8 to 256 characters", store.ErrInvalid)
	}
	if err := validRoles(s.Roles, s.Department); err != nil {
		return store.Account{}, err
	}
	if err := fleet.CheckScope(s.Regions); err != nil {
		return store.Account{}, fmt.Errorf("%w: %w", store.ErrInvalid, err)
	}
	h, err := p.hash(s.Password)
	if err != nil {
		return store.Account{}, err
	}
	a := store.Account{ID: "u_" + randomToken(12), Kind: "staff", Username: s.Username, Name: s.Name,
		PasswordHash: h, Roles: s.Roles, Regions: s.Regions, Department: s.Department, CreatedAt: p.now()}
	if err := p.st.CreateAccount(ctx, a); err != nil {
		return store.Account{}, err
	}
	return a, nil
}

func (p *Provider) hash(password string) (string, error) {
	p.hashSem <- struct{}{}
	defer func() { <-p.hashSem }()
	return argon2id.CreateHash(password, p.cfg.Argon2)
}

func (p *Provider) compare(password, hash string) bool {
	p.hashSem <- struct{}{}
	defer func() { <-p.hashSem }()
	ok, err := argon2id.ComparePasswordAndHash(password, hash)
	return err == nil && ok
}

// throttled reports whether an account with n consecutive failures, the last at last, may not
// try again at now: after ThrottleAfter failures each attempt waits ThrottleBase·2^(n-ThrottleAfter)
// (at most 15 min); from LockAfter failures on the account is locked (NIST SP 800-63B §5.2.2).
func (p *Provider) throttled(n int, last, now time.Time) bool {
	if n >= p.cfg.LockAfter {
		return true
	}
	if n < p.cfg.ThrottleAfter {
		return false
	}
	return now.Before(last.Add(p.Delay(n)))
}

// Delay is the wait after n consecutive failures before the next attempt is considered.
func (p *Provider) Delay(n int) time.Duration {
	if n < p.cfg.ThrottleAfter {
		return 0
	}
	d := p.cfg.ThrottleBase
	for i := p.cfg.ThrottleAfter; i < n && d < 15*time.Minute; i++ {
		d *= 2
	}
	return min(d, 15*time.Minute)
}

// PasswordLogin checks a username and password. Every failure is ErrLogin, and every answer
// costs one argon2id computation, so that neither message nor timing tells whether the account
// exists or is throttled.
func (p *Provider) PasswordLogin(ctx context.Context, username, password string) (store.Account, error) {
	start := time.Now()
	a, err := p.passwordLogin(ctx, username, password)
	if err != nil {
		t := time.NewTimer(p.cfg.FailureFloor - time.Since(start))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return a, err
}

func (p *Provider) passwordLogin(ctx context.Context, username, password string) (store.Account, error) {
	now := p.now()
	a, err := p.st.AccountByUsername(ctx, username)
	if err != nil {
		p.compare(password, p.dummyHash)
		if !errors.Is(err, store.ErrNotFound) {
			return store.Account{}, err
		}
		p.refused(ctx, LoginUnknown, store.Account{})
		return store.Account{}, ErrLogin
	}
	if a.PasswordHash == "" || p.throttled(a.Failures, a.LastFailure, now) {
		p.compare(password, p.dummyHash)
		p.log.Info("login refused (throttled or no password)", "account", a.ID, "failures", a.Failures)
		kind := LoginFailed // no password to check against
		switch {
		case a.Failures >= p.cfg.LockAfter:
			kind = LoginLocked
		case a.PasswordHash != "":
			kind = LoginThrottled
		}
		p.refused(ctx, kind, a)
		return store.Account{}, ErrLogin
	}
	ok := p.compare(password, a.PasswordHash)
	if ok && a.Failures == 0 {
		return a, nil // nothing to reset: no write
	}
	n, err := p.st.RecordLogin(ctx, a.ID, ok, now)
	if err != nil {
		return store.Account{}, err
	}
	if !ok {
		p.log.Info("wrong password", "account", a.ID, "failures", n)
		p.refused(ctx, LoginFailed, a)
		if n >= p.cfg.LockAfter && a.Failures < p.cfg.LockAfter {
			p.refused(ctx, LoginLocked, a)
		}
		return store.Account{}, ErrLogin
	}
	return a, nil
}

// citizenByCard finds the citizen with the card's ID number or creates the account. The
// number is stored encrypted (bound to the account ID) and found by its keyed hash.
func (p *Provider) citizenByCard(ctx context.Context, card *wire.IDCard) (store.Account, error) {
	h := p.sec.idHash(string(card.Number))
	a, err := p.st.AccountByIDHash(ctx, h)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return a, err
	}
	a = store.Account{ID: "c_" + randomToken(12), Kind: "citizen", Roles: []string{RoleCitizen},
		IDNumberHash: h, CreatedAt: p.now()}
	// The card's number and name are stored only encrypted, bound to the account ID.
	plain, err := json.Marshal(card)
	if err != nil {
		return store.Account{}, err
	}
	a.IDNumberEnc = seal(p.sec.idAEAD, plain, []byte(a.ID))
	clear(plain)
	if err := p.st.CreateAccount(ctx, a); err != nil {
		if errors.Is(err, store.ErrExists) { // created concurrently
			return p.st.AccountByIDHash(ctx, h)
		}
		return store.Account{}, err
	}
	return a, nil
}

// IDCardOf decrypts the card data (number and name) of a citizen's account; the caller wipes
// it after use.
func (p *Provider) IDCardOf(a store.Account) (*wire.IDCard, error) {
	if len(a.IDNumberEnc) == 0 {
		return nil, fmt.Errorf("identity: account %s has no ID card data", a.ID)
	}
	b, err := open(p.sec.idAEAD, a.IDNumberEnc, []byte(a.ID))
	if err != nil {
		return nil, fmt.Errorf("identity: account %s: card data does not decrypt: %w", a.ID, err)
	}
	defer clear(b)
	var c wire.IDCard
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("identity: account %s: corrupt card data", a.ID)
	}
	return &c, nil
}

// Built-in clients (channels), registered by Bootstrap.
const (
	ClientWebPortal   = "web-portal"
	ClientMobileApp   = "mobile-app"
	ClientMiniProgram = "mini-program"
	ClientKioskShell  = "kiosk-shell"
	ClientConsole     = "fleet-console"
	ClientFleetctl    = "fleetctl"
)

// BootstrapConfig says how to set up a fresh provider.
type BootstrapConfig struct {
	AdminUsername string // default "admin"
	AdminPassword string // empty: a random one is generated and returned once
	// BaseURL of the hub's web channels; redirect URIs of the built-in clients hang below it.
	BaseURL string
	// ConsoleURL is the fleet console's base URL as browsers reach it (default BaseURL +
	// "/console"): the console client's redirect URI is ConsoleURL + "/callback", where it is
	// sent back after logout ConsoleURL + "/".
	ConsoleURL string
}

// Bootstrapped is what Bootstrap created and must be shown to the operator once: nothing on a
// later start.
type Bootstrapped struct {
	AdminPassword string            // set when generated
	ClientSecrets map[string]string // of the confidential built-in clients it registered
}

// Bootstrap creates the first admin (if the username is free) and registers the built-in
// clients (if absent); it is idempotent, for every start.
func (p *Provider) Bootstrap(ctx context.Context, b BootstrapConfig) (Bootstrapped, error) {
	var out Bootstrapped
	if b.AdminUsername == "" {
		b.AdminUsername = "admin"
	}
	if _, err := p.st.AccountByUsername(ctx, b.AdminUsername); errors.Is(err, store.ErrNotFound) {
		if b.AdminPassword == "" {
			b.AdminPassword = randomToken(15)
			out.AdminPassword = b.AdminPassword
		}
		if _, err := p.CreateStaff(ctx, NewStaff{Username: b.AdminUsername, Name: "Administrator",
			Password: b.AdminPassword, Roles: []string{RoleAdmin}}); err != nil {
			return out, fmt.Errorf("identity: bootstrap admin: %w", err)
		}
		p.log.Info("bootstrap admin created", "username", b.AdminUsername)
	} else if err != nil {
		return out, err
	}
	if b.ConsoleURL == "" {
		b.ConsoleURL = b.BaseURL + "/console"
	}
	b.ConsoleURL = strings.TrimRight(b.ConsoleURL, "/")
	code, refresh, device, bearer := "authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code", GrantTypeJWTBearer
	all := []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeOfflineAccess}
	// The staff's clients may ask for the fleet API, the citizens' channels for the citizens' API.
	fleet, citizen := []string{p.FleetAPI()}, []string{p.CitizenAPI()}
	builtins := []store.Client{
		{ID: ClientWebPortal, Name: "政务服务网 Web portal", AppType: "web", FirstParty: true,
			RedirectURIs: []string{b.BaseURL + "/portal/callback"}, PostLogoutURIs: []string{b.BaseURL + "/portal/"},
			GrantTypes: []string{code, refresh}, Scopes: all, Resources: citizen},
		{ID: ClientMobileApp, Name: "移动端 Mobile app", AppType: "native", FirstParty: true,
			RedirectURIs: []string{"cn.gov.kioskfleet.app:/oauth2redirect"}, GrantTypes: []string{code, refresh}, Scopes: all,
			Resources: citizen},
		{ID: ClientMiniProgram, Name: "小程序 Mini-program", AppType: "native", FirstParty: true,
			RedirectURIs: []string{"cn.gov.kioskfleet.mini:/oauth2redirect"}, GrantTypes: []string{code, refresh}, Scopes: all,
			Resources: citizen},
		{ID: ClientKioskShell, Name: "自助终端 Kiosk", AppType: "native", FirstParty: true, KioskOnly: true,
			RedirectURIs: []string{"http://127.0.0.1/kiosk/callback"}, GrantTypes: []string{code, device, bearer},
			Scopes: []string{oidc.ScopeOpenID, oidc.ScopeProfile}, Resources: citizen},
		{ID: ClientConsole, Name: "运维控制台 Fleet console", AppType: "web", FirstParty: true,
			RedirectURIs: []string{b.ConsoleURL + "/callback"}, PostLogoutURIs: []string{b.ConsoleURL + "/"},
			GrantTypes: []string{code, refresh}, Scopes: all, Resources: fleet},
		{ID: ClientFleetctl, Name: "fleetctl 命令行", AppType: "native", FirstParty: true,
			GrantTypes: []string{device, refresh}, Scopes: all, Resources: fleet},
	}
	out.ClientSecrets = map[string]string{}
	for _, c := range builtins {
		if old, err := p.st.GetClient(ctx, c.ID); err == nil {
			// Registered by an earlier start: the scopes are set if it had none (it predates them),
			// the resources follow the issuer (the public URL may have changed), the console's
			// addresses follow ConsoleURL.
			console := c.ID == ClientConsole && (!slices.Equal(old.RedirectURIs, c.RedirectURIs) || !slices.Equal(old.PostLogoutURIs, c.PostLogoutURIs))
			if old.Scopes == nil || !slices.Equal(old.Resources, c.Resources) || console {
				if old.Scopes == nil {
					old.Scopes = c.Scopes
				}
				if console {
					old.RedirectURIs, old.PostLogoutURIs = c.RedirectURIs, c.PostLogoutURIs
				}
				old.Resources = c.Resources
				p.clients.Delete(c.ID)
				if err := p.st.PutClient(ctx, old); err != nil {
					return out, fmt.Errorf("identity: update built-in client %s: %w", c.ID, err)
				}
			}
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return out, err
		}
		if c.AppType == "web" {
			s := randomToken(32)
			h := sha256.Sum256([]byte(s))
			c.SecretHash, out.ClientSecrets[c.ID] = h[:], s
		}
		if err := p.st.PutClient(ctx, c); err != nil {
			return out, fmt.Errorf("identity: bootstrap client %s: %w", c.ID, err)
		}
		p.log.Info("built-in client registered", "client", c.ID)
	}
	return out, nil
}
