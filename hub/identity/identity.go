// Package identity makes the hub an OpenID Provider for every channel (web portal, mobile app,
// mini-program, kiosk shell, fleet console, fleetctl), built on zitadel/oidc's pkg/op.
//
// It offers the authorization code flow with PKCE (S256 only; public clients must use it),
// refresh tokens that rotate on use with reuse detection per family, the device authorization
// grant (RFC 8628) for QR login at a kiosk and for fleetctl, and an ID-card login at a kiosk
// through a JWT bearer grant (RFC 7523) signed by the kiosk's enrolled device key. Implicit,
// hybrid, password and client-credentials grants are not offered. Accounts are citizens (ID card
// data only encrypted, found by keyed hash) and staff with roles; passwords are argon2id with
// throttling and lockout (NIST SP 800-63B §5.2.2). Subjects are public or pairwise per client
// (OIDC Core §8).
//
// Citizens log in on the web, mobile and mini-program channels with passkeys (passkey.go,
// WebAuthn) or a text-message code (phone.go, sent by an SMSSender), and manage their account at
// /oidc/me (account.go); the assurance of a login is its acr (login.go), which services demand
// with acr_values. A citizen binds her ID card at a kiosk by approving its QR login for it
// (realname.go).
//
// A card bound to a card-only account (made by an ID-card login at a kiosk, with no credential
// of its own: no passkey, phone, upstream link or password) does not block its binding to the
// holder's phone or passkey account: the binding, which proves she holds both the card (read by
// the kiosk, whose signed assertion says so) and the account (her passkey session approved the
// kiosk's QR code), merges the card-only account into hers in one store transaction
// (store.MergeCardAccount): the card moves; the consents it gave departments are carried over
// where her account has none for that department; its sessions and tokens end; it is deleted
// as at her request, the AccountHooks told (a hook keeping what she must not lose, her cases,
// implements AccountMerged and is told first); the merge is in the staff audit log. Its events'
// pseudonym link is dropped, not carried: its events stay under a pseudonym no account maps to
// any more, since joining her card-only kiosk history to her other account's is a processing she
// did not ask for (PIPL art. 6, minimum necessary). A card bound to an account with any other
// credential is another person's (or her other real) account: a second account binds it only
// after that one unbinds it on its account page.
//
// Paths (all served by Provider.Handler; mount DiscoveryPath and PathPrefix):
//
//	GET  /.well-known/openid-configuration   discovery
//	GET  /oidc/keys                          JWKS (ES256; retired keys until their tokens expire)
//	GET  /oidc/authorize                     code flow (op), then /oidc/login and /oidc/consent
//	POST /oidc/token                         code, refresh_token, device_code, jwt-bearer grants
//	POST /oidc/device_authorization          RFC 8628 §3.1 (kiosk shell adds kiosk_assertion)
//	GET  /oidc/device                        device approval page (verification_uri)
//	GET  /oidc/userinfo, POST /oidc/introspect, POST /oidc/revoke, GET /oidc/end_session
//	GET  /oidc/account/sessions, DELETE /oidc/account/sessions/{id}   the caller's sessions
//	/oidc/admin/clients[/{id}], /oidc/admin/staff[/{username}] (GET lists) role admin
//	POST /oidc/phone/send, /oidc/phone/verify   phone-code login (login page forms)
//	POST /oidc/passkey/{login,register}/{begin,finish}   WebAuthn ceremonies (pages/citizen.js)
//	GET  /oidc/me, POST /oidc/me/{action}, GET /oidc/me/export   the citizen's account page
//	GET  /oidc/upstream/{connector}/{login,callback}   login with an upstream identity (upstream.go)
//
// Kiosk assertions: see wire.KioskClaims.
package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/kioskfleet/kioskfleet/hub/ratelimit"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

var (
	ErrConfig       = errors.New("identity: invalid configuration")
	ErrUnauthorized = errors.New("identity: no valid access token")
)

// Roles.
const (
	RoleAdmin     = "admin"
	RoleFieldOps  = "fieldops"
	RoleReviewer  = "reviewer"
	RoleDeveloper = "developer" // of one department (store.Account.Department): its apps and guides
	RoleOperator  = "operator"  // publishes, lists and delists apps per channel, runs rollouts
	RoleCitizen   = "citizen"
)

// Authentication context class and method references (RFC 8176) put in tokens.
const (
	ACRPassword = "urn:kioskfleet:acr:password"
	ACRIDCard   = "urn:kioskfleet:acr:idcard"
	ACRDevice   = "urn:kioskfleet:acr:device" // approved on another, logged-in device
)

// DeviceLookup finds enrolled kiosks; store.Devices satisfies it.
type DeviceLookup interface {
	GetDevice(ctx context.Context, id string) (store.Device, error)
}

// SiteLookup is an optional capability of a DeviceLookup: it names the kiosk's site on the
// device approval page.
type SiteLookup interface {
	GetSite(ctx context.Context, id string) (store.Site, error)
}

// Config configures the provider. Zero durations take the defaults shown.
type Config struct {
	Issuer   string // https://hub.example.org (http only with Insecure)
	Secret   []byte // master secret, at least 32 random bytes; every key is derived from it
	Insecure bool   // allow an http issuer (development and tests)

	AccessTokenTTL  time.Duration // 15m
	RefreshTokenTTL time.Duration // 720h
	IDTokenTTL      time.Duration // 1h
	KioskSessionTTL time.Duration // 10m: ID-card sessions at a kiosk
	CodeTTL         time.Duration // 5m: authorization requests and their codes
	DeviceCodeTTL   time.Duration // 5m
	DevicePoll      time.Duration // 5s
	KeyRotation     time.Duration // 720h: age at which the signing key is replaced
	AssertionMaxAge time.Duration // 2m: lifetime cap of a kiosk assertion

	// Password hashing (argon2id) and throttling.
	Argon2 *argon2id.Params // default: 19 MiB, 2 passes, 1 lane (OWASP minimum)
	// ThrottleAfter failures in a row, each further attempt waits ThrottleBase doubled per
	// failure (capped at 15 min); at LockAfter failures the account is locked.
	ThrottleAfter int           // 5
	ThrottleBase  time.Duration // 1s
	LockAfter     int           // 100
	DeviceGuesses int           // 10: wrong user codes an account may enter per 15 min
	// FailureFloor is the least time a failed password login takes, so that the answer's
	// timing does not tell an unknown account from a wrong password or a throttled account.
	FailureFloor time.Duration // 250ms

	// Limits per client address (ratelimit; the per-account throttling above still applies):
	// password logins (POST /oidc/login), token requests, device authorization requests and the
	// device approval page (user code entries). Zero: the default shown; ratelimit.Unlimited: off.
	LoginRate      ratelimit.Rate // 30 a minute, 10 at once
	TokenRate      ratelimit.Rate // 600 a minute, 120 at once (kiosks of a hall share an address)
	DeviceAuthRate ratelimit.Rate // 60 a minute, 20 at once
	UserCodeRate   ratelimit.Rate // 20 a minute, 10 at once
	// TrustedProxies are the reverse proxies in front of the hub whose X-Forwarded-For names
	// the client address; without any, the connection's address is the client's.
	TrustedProxies []netip.Prefix

	// Citizens' logins on the web, mobile and mini-program channels.
	//
	// SMS sends the one-time codes of the phone login; nil: no phone login. (The development
	// sender, sms.DevFile, is never used unless given here.)
	SMS            SMSSender
	PhoneCodeTTL   time.Duration         // 5m
	PhoneCodeTries int                   // 5 attempts at one code
	PhoneCodes     store.PhoneCodeLimits // per number: 5 codes an hour, one a minute
	// Per client address: codes asked for, and codes entered.
	PhoneSendRate   ratelimit.Rate // 10 a minute, 5 at once
	PhoneVerifyRate ratelimit.Rate // 30 a minute, 10 at once
	// Passkeys (WebAuthn): the relying party ID (default: the issuer's host; passkeys are off
	// when that is an IP address) and origins accepted besides the issuer's, e.g. the mobile
	// app's (android:apk-key-hash:...) or a portal on a subdomain.
	PasskeyRPID    string
	PasskeyOrigins []string
	// AccountHooks are told of every deleted account (AccountDeleted).
	AccountHooks []AccountDeleted
	// Upstreams are the upstream identity providers citizens may log in with and link to their
	// account (upstream.go); register UpstreamCallback(Issuer, ID) at each.
	Upstreams []Upstream

	Now func() time.Time // clock, for tests
}

func (c *Config) defaults() error {
	u, err := url.Parse(c.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(c.Insecure && u.Scheme == "http")) || u.RawQuery != "" {
		return fmt.Errorf("%w: issuer %q must be an https URL without query", ErrConfig, c.Issuer)
	}
	c.Issuer = strings.TrimSuffix(c.Issuer, "/")
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.AccessTokenTTL, 15*time.Minute)
	def(&c.RefreshTokenTTL, 720*time.Hour)
	def(&c.IDTokenTTL, time.Hour)
	def(&c.KioskSessionTTL, 10*time.Minute)
	def(&c.CodeTTL, 5*time.Minute)
	def(&c.DeviceCodeTTL, 5*time.Minute)
	def(&c.DevicePoll, 5*time.Second)
	def(&c.KeyRotation, 720*time.Hour)
	def(&c.AssertionMaxAge, 2*time.Minute)
	def(&c.ThrottleBase, time.Second)
	def(&c.FailureFloor, 250*time.Millisecond)
	if c.Argon2 == nil {
		c.Argon2 = &argon2id.Params{Memory: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	}
	if c.ThrottleAfter == 0 {
		c.ThrottleAfter = 5
	}
	if c.LockAfter == 0 {
		c.LockAfter = 100
	}
	if c.DeviceGuesses == 0 {
		c.DeviceGuesses = 10
	}
	rate := func(r *ratelimit.Rate, v ratelimit.Rate) {
		if *r == (ratelimit.Rate{}) {
			*r = v
		}
	}
	rate(&c.LoginRate, ratelimit.PerMinute(30, 10))
	rate(&c.TokenRate, ratelimit.PerMinute(600, 120))
	rate(&c.DeviceAuthRate, ratelimit.PerMinute(60, 20))
	rate(&c.UserCodeRate, ratelimit.PerMinute(20, 10))
	rate(&c.PhoneSendRate, ratelimit.PerMinute(10, 5))
	rate(&c.PhoneVerifyRate, ratelimit.PerMinute(30, 10))
	def(&c.PhoneCodeTTL, 5*time.Minute)
	if c.PhoneCodeTries == 0 {
		c.PhoneCodeTries = 5
	}
	if c.PhoneCodes == (store.PhoneCodeLimits{}) {
		c.PhoneCodes = store.PhoneCodeLimits{Window: time.Hour, MaxSends: 5, MinInterval: time.Minute}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	var errs []error
	seen := map[string]bool{}
	for i, u := range c.Upstreams {
		if !upstreamIDRE.MatchString(u.ID) || seen[u.ID] || u.Connector == nil || u.Name == "" {
			errs = append(errs, fmt.Errorf("%w: upstream %d (%q): want a unique ID of [a-z0-9_-], a name and a connector", ErrConfig, i+1, u.ID))
		}
		seen[u.ID] = true
	}
	return errors.Join(errs...)
}

var upstreamIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Provider is the hub's OpenID Provider.
type Provider struct {
	cfg     Config
	st      store.Identity
	devices DeviceLookup
	log     *slog.Logger
	sec     *secrets
	op      *op.Provider
	mux     *http.ServeMux
	keys    keyCache
	pages   *pages
	lim     limiters

	discovery []byte // rendered once: the configuration does not change at run time

	clients sync.Map // client ID -> cachedClient

	dummyHash string // for constant-time answers on unknown accounts
	hashSem   chan struct{}

	wa *webauthn.WebAuthn // nil: no passkeys
}

// Paths served by Handler.
const (
	PathPrefix    = "/oidc/"
	DiscoveryPath = "/.well-known/openid-configuration"
	loginPath     = "/oidc/login"
	consentPath   = "/oidc/consent"
	devicePath    = "/oidc/device"
	logoutDone    = "/oidc/logged-out"
	accountPath   = "/oidc/me"
	assetsPath    = "/oidc/assets/"
)

// New returns a provider on st, creating its first signing key if there is none. devices finds
// kiosks for ID-card login and device approval pages.
func New(ctx context.Context, cfg Config, st store.Identity, devices DeviceLookup, log *slog.Logger) (*Provider, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	sec, err := deriveSecrets(cfg.Secret)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Provider{cfg: cfg, st: st, devices: devices, log: log, sec: sec,
		hashSem: make(chan struct{}, max(2, runtime.NumCPU()))}
	p.dummyHash, err = argon2id.CreateHash(randomToken(16), cfg.Argon2)
	if err != nil {
		return nil, err
	}
	p.lim = newLimiters(cfg)
	if p.wa, err = newWebAuthn(cfg); err != nil {
		return nil, err
	}
	if p.wa == nil {
		log.Info("passkeys off: the issuer's host is an IP address, and WebAuthn needs a domain (set PasskeyRPID)")
	}
	if p.pages, err = newPages(); err != nil {
		return nil, err
	}
	if _, err := p.signingKey(ctx); err != nil {
		return nil, err
	}
	opts := []op.Option{
		op.WithCustomEndpoints(op.NewEndpoint("oidc/authorize"), op.NewEndpoint("oidc/token"),
			op.NewEndpoint("oidc/userinfo"), op.NewEndpoint("oidc/revoke"), op.NewEndpoint("oidc/end_session"),
			op.NewEndpoint("oidc/keys")),
		op.WithCustomIntrospectionEndpoint(op.NewEndpoint("oidc/introspect")),
		op.WithCustomDeviceAuthorizationEndpoint(op.NewEndpoint("oidc/device_authorization")),
	}
	if cfg.Insecure {
		opts = append(opts, op.WithAllowInsecure())
	}
	opCfg := &op.Config{
		CryptoKey:                sec.tokenKey,
		CryptoKeyId:              "k1",
		DefaultLogoutRedirectURI: logoutDone,
		CodeMethodS256:           true,
		GrantTypeRefreshToken:    true,
		SupportedUILocales:       []language.Tag{language.SimplifiedChinese, language.English},
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime:     cfg.DeviceCodeTTL,
			PollInterval: cfg.DevicePoll,
			UserFormPath: devicePath,
			// 8 characters of 20: 20^8 ≈ 2^34.6 (RFC 8628 §6.1 suggests base-20 and a rate limit).
			UserCode: op.UserCodeBase20,
		},
	}
	p.op, err = op.NewProvider(opCfg, &opStorage{p}, op.StaticIssuer(cfg.Issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := p.renderDiscovery(ctx); err != nil {
		return nil, err
	}
	p.routes()
	return p, nil
}

// Handler serves every identity path: DiscoveryPath and everything under PathPrefix.
func (p *Provider) Handler() http.Handler { return secureHeaders(p.mux) }

func (p *Provider) now() time.Time { return p.cfg.Now().UTC() }

func (p *Provider) issuerCtx(ctx context.Context) context.Context {
	return op.ContextWithIssuer(ctx, p.cfg.Issuer)
}

func (p *Provider) routes() {
	m := http.NewServeMux()
	opH := p.op // routes the OP endpoints itself, with the issuer in the context
	m.HandleFunc("GET "+DiscoveryPath, p.serveDiscovery)
	m.HandleFunc("GET /oidc/keys", p.serveKeys)
	m.HandleFunc("/oidc/authorize", p.serveAuthorize)
	m.HandleFunc("POST /oidc/token", p.limit(p.lim.token, "token", p.serveToken))
	m.HandleFunc("GET /oidc/userinfo", p.serveUserinfo)
	m.HandleFunc("POST /oidc/userinfo", p.serveUserinfo)
	m.HandleFunc("/oidc/end_session", p.pageHeaders(p.serveEndSession))
	m.HandleFunc("POST /oidc/device_authorization", p.limit(p.lim.deviceAuth, "device_authorization", p.serveDeviceAuthorization))
	m.HandleFunc(loginPath, p.pageHeaders(p.limit(p.lim.login, "login", p.serveLogin, http.MethodPost)))
	m.HandleFunc(consentPath, p.pageHeaders(p.serveConsent))
	m.HandleFunc(devicePath, p.pageHeaders(p.limit(p.lim.userCode, "device", p.serveDevice)))
	m.HandleFunc("GET "+logoutDone, p.pageHeaders(p.serveLoggedOut))
	m.HandleFunc("POST /oidc/phone/send", p.pageHeaders(p.limit(p.lim.phoneSend, "phone_send", p.servePhoneSend)))
	m.HandleFunc("POST /oidc/phone/verify", p.pageHeaders(p.limit(p.lim.phoneVerify, "phone_verify", p.servePhoneVerify)))
	m.HandleFunc("POST /oidc/passkey/login/begin", p.limit(p.lim.login, "passkey", p.servePasskeyLoginBegin))
	m.HandleFunc("POST /oidc/passkey/login/finish", p.limit(p.lim.login, "passkey", p.servePasskeyLoginFinish))
	m.HandleFunc("POST /oidc/passkey/register/begin", p.servePasskeyRegisterBegin)
	m.HandleFunc("POST /oidc/passkey/register/finish", p.servePasskeyRegisterFinish)
	m.HandleFunc("GET /oidc/upstream/{connector}/login", p.pageHeaders(p.limit(p.lim.login, "upstream", p.serveUpstreamLogin)))
	m.HandleFunc("GET /oidc/upstream/{connector}/callback", p.pageHeaders(p.serveUpstreamCallback))
	m.HandleFunc("GET "+assetsPath+"{file}", p.serveAsset)
	m.HandleFunc(accountPath, p.pageHeaders(p.serveAccount))
	m.HandleFunc("POST "+accountPath+"/{action}", p.pageHeaders(p.serveAccountAction))
	m.HandleFunc("GET "+accountPath+"/export", p.pageHeaders(p.serveExport))
	m.HandleFunc("GET /oidc/account/sessions", p.serveListSessions)
	m.HandleFunc("DELETE /oidc/account/sessions/{id}", p.serveRevokeSession)
	m.HandleFunc(api.AdminClientsPath, p.serveClients)
	m.HandleFunc(api.AdminClientsPath+"/{id}", p.serveClient)
	m.HandleFunc("GET "+api.AdminStaffPath, p.serveListStaff)
	m.HandleFunc("POST "+api.AdminStaffPath, p.serveCreateStaff)
	m.HandleFunc("PUT "+api.AdminStaffPath+"/{username}", p.serveUpdateStaff)
	m.Handle(PathPrefix, opH)
	p.mux = m
}

// Run lets the upstreams' connectors prepare (discovery), then purges expired requests, sessions, tokens and assertion IDs, and carries account
// deletions to the AccountHooks that failed to take them, every interval until ctx ends.
// The hub runs it in a goroutine it owns; it returns ctx's error.
func (p *Provider) Run(ctx context.Context, interval time.Duration) error {
	p.prepareUpstreams(ctx)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := p.st.Purge(ctx, p.now().Add(-time.Hour)); err != nil && ctx.Err() == nil {
				p.log.Warn("purge failed", "err", err)
			}
			p.retryDeletions(ctx)
		}
	}
}
