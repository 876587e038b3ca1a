package store

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrCodeReused marks an authorization code presented a second time (ConsumeCode).
	ErrCodeReused = errors.New("store: authorization code reused")
	// ErrTokenReused marks a refresh token presented after it was rotated or revoked
	// (RotateRefresh).
	ErrTokenReused = errors.New("store: refresh token reused")
)

// Identity keeps what the hub's OpenID Provider (hub/identity) persists. Lookups of something
// absent return an error wrapping ErrNotFound, duplicates ErrExists.
type Identity interface {
	Clients
	Accounts
	AuthRequests
	Tokens
	DeviceAuths
	SigningKeys
	BrowserSessions
	Citizens
	Guesses
}

// Clients keeps registered clients (channels).
type Clients interface {
	PutClient(ctx context.Context, c Client) error // insert or replace
	GetClient(ctx context.Context, id string) (Client, error)
	ListClients(ctx context.Context) ([]Client, error)
	DeleteClient(ctx context.Context, id string) error
}

// Accounts keeps citizens' and staff accounts.
type Accounts interface {
	// CreateAccount stores a new account; ErrExists on a duplicate ID, username or ID hash.
	CreateAccount(ctx context.Context, a Account) error
	GetAccount(ctx context.Context, id string) (Account, error)
	AccountByUsername(ctx context.Context, username string) (Account, error)
	AccountByIDHash(ctx context.Context, idHash []byte) (Account, error)
	// ListAccounts returns the accounts of a kind (staff or citizen), by username then ID.
	ListAccounts(ctx context.Context, kind string) ([]Account, error)
	// RecordLogin records the result of a password check: success resets the consecutive
	// failure count, failure increments it and stamps the time. It returns the new count.
	RecordLogin(ctx context.Context, id string, success bool, at time.Time) (failures int, err error)
	SetPassword(ctx context.Context, id, hash string) error
	SetRoles(ctx context.Context, id string, roles []string) error
	// SetRegions replaces a staff account's region scope (nil or empty: the whole country).
	SetRegions(ctx context.Context, id string, regions []string) error
	// SetDepartment binds a staff account to a department ("": to none).
	SetDepartment(ctx context.Context, id, department string) error
}

// AuthRequests keeps authorization requests of the code flow.
type AuthRequests interface {
	SaveAuthRequest(ctx context.Context, a AuthRequest) error // insert or replace
	GetAuthRequest(ctx context.Context, id string) (AuthRequest, error)
	// ConsumeCode atomically marks the request holding the code (by hash) as consumed and returns
	// it. A code that was consumed already returns the request and ErrCodeReused.
	ConsumeCode(ctx context.Context, codeHash []byte) (AuthRequest, error)
	// DeleteAuthRequest removes a request unless its code was consumed (kept to detect reuse).
	DeleteAuthRequest(ctx context.Context, id string) error
}

// Tokens keeps the provider's access and refresh tokens, grouped in families (one per grant).
type Tokens interface {
	InsertTokens(ctx context.Context, ts ...Token) error
	GetToken(ctx context.Context, id string) (Token, error)
	TokenByHash(ctx context.Context, hash []byte) (Token, error)
	// RotateRefresh marks refresh token oldID as rotated and inserts the new tokens, in one
	// transaction. If oldID was rotated or revoked already, it revokes the whole family instead
	// and returns ErrTokenReused.
	RotateRefresh(ctx context.Context, oldID string, at time.Time, ts ...Token) error
	RevokeFamily(ctx context.Context, familyID string, at time.Time) error
	RevokeToken(ctx context.Context, id string, at time.Time) error
	// RevokeSubject revokes every token of subject at client.
	RevokeSubject(ctx context.Context, clientID, subject string, at time.Time) error
	// ListGrants returns the account's families with a live token at now, newest first.
	ListGrants(ctx context.Context, userID string, now time.Time) ([]Grant, error)
}

// DeviceAuths keeps device authorization requests (RFC 8628).
type DeviceAuths interface {
	// CreateDeviceAuth stores a new request; ErrExists on a duplicate user code.
	CreateDeviceAuth(ctx context.Context, d DeviceAuth) error
	DeviceAuthByUserCode(ctx context.Context, userCode string) (DeviceAuth, error)
	// PollDeviceAuth records a poll of the device code (by hash) by clientID at now. When the
	// previous poll was less than the interval ago, the interval grows by 5 s and slowDown is
	// true (RFC 8628 §3.5). An approved request is returned once and marked as issued.
	PollDeviceAuth(ctx context.Context, clientID string, codeHash []byte, now time.Time) (d DeviceAuth, slowDown bool, err error)
	// DecideDeviceAuth approves (with the user's identity) or denies a pending, unexpired
	// request; ErrNotFound if there is none such.
	DecideDeviceAuth(ctx context.Context, userCode string, d DeviceAuth, now time.Time) error
}

// Key uses (RFC 7517 §4.2).
const (
	KeyUseSig = "sig"
	KeyUseEnc = "enc"
)

// SigningKeys keeps the provider's signing and encryption keys and seen assertion IDs.
type SigningKeys interface {
	// AddSigningKey stores a new active key and retires every other active key of the same use
	// at k.CreatedAt.
	AddSigningKey(ctx context.Context, k SigningKey) error
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// DeleteSigningKeys removes keys retired before t.
	DeleteSigningKeys(ctx context.Context, retiredBefore time.Time) error
	// UseAssertion records a one-time assertion ID until exp; ErrExists if it was seen.
	UseAssertion(ctx context.Context, id string, exp time.Time) error
}

// Guesses counts wrong device user codes entered per account, in windows, shared by every
// replica (RFC 8628 §5.1: brute force of the user code).
type Guesses interface {
	// CountGuess returns how many wrong codes userID entered in its current window, this one
	// included when wrong. A window lasts window from its start; a call after it ended starts a
	// new one at now.
	CountGuess(ctx context.Context, userID string, wrong bool, now time.Time, window time.Duration) (int, error)
}

// BrowserSessions keeps browser sessions of the login pages (by hash of the cookie).
type BrowserSessions interface {
	CreateBrowserSession(ctx context.Context, s BrowserSession) error
	GetBrowserSession(ctx context.Context, hash []byte) (BrowserSession, error)
	DeleteBrowserSession(ctx context.Context, hash []byte) error
	// Purge deletes expired auth requests, device requests, sessions, tokens, assertion IDs,
	// ceremonies and phone codes (once past their number's limit window too), and the guess
	// counts of windows begun before now.
	Purge(ctx context.Context, now time.Time) error
}

// Client is a channel registered with the OpenID Provider.
type Client struct {
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	SecretHash     []byte   `json:"-"`       // SHA-256 of the secret; empty for public clients
	AppType        string   `json:"appType"` // web, native or user_agent
	RedirectURIs   []string `json:"redirectUris"`
	PostLogoutURIs []string `json:"postLogoutRedirectUris"`
	GrantTypes     []string `json:"grantTypes"` // OAuth grant type names
	FirstParty     bool     `json:"firstParty"` // consent not asked
	// Pairwise subjects (OIDC Core §8.1): the sector groups clients that may correlate.
	Pairwise bool   `json:"pairwise"`
	Sector   string `json:"sector,omitempty"`
	// KioskOnly marks the kiosk shell: its sessions are short and never refreshable.
	KioskOnly bool `json:"kioskOnly,omitempty"`
	// Scopes the client may be granted (openid, profile, offline_access); nil means openid only.
	Scopes []string `json:"scopes,omitempty"`
	// Resources are the resource indicators (RFC 8707) the client may ask tokens for, e.g. the
	// fleet API; a client without one gets tokens that no API of the hub accepts.
	Resources []string `json:"resources,omitempty"`
}

// Public reports whether the client has no secret.
func (c Client) Public() bool { return len(c.SecretHash) == 0 }

// Account is a citizen or staff member.
type Account struct {
	ID           string
	Kind         string // citizen or staff
	Username     string // empty for citizens known only by ID card
	Name         string
	PasswordHash string // argon2id encoded; empty when no password
	Roles        []string
	// Regions is a staff account's scope: GB/T 2260 prefixes ("44" a province, "4403" a city,
	// "440305" a county); it sees and acts on kiosks under one of them only. Empty: everywhere.
	Regions      []string
	Department   string // a staff account's department (hub/catalog), if it is bound to one
	IDNumberEnc  []byte // AES-GCM ciphertext of the ID number
	IDNumberHash []byte // HMAC-SHA256 of the ID number, for lookup
	Failures     int
	LastFailure  time.Time
	CreatedAt    time.Time
}

// AuthRequest is an authorization request of the code flow and its outcome.
type AuthRequest struct {
	ID                  string
	ClientID            string
	RedirectURI         string
	State               string
	Nonce               string
	Scopes              []string
	ResponseType        string
	ResponseMode        string
	CodeChallenge       string
	CodeChallengeMethod string
	Prompt              []string
	UILocales           string
	CreatedAt           time.Time
	ExpiresAt           time.Time
	FamilyID            string   // the token family its code will start
	Kiosk               bool     // for a kiosk-only client: short session
	Resources           []string // resource indicators granted (RFC 8707 §2.1)
	ACRValues           []string // acr_values asked for (OIDC Core §3.1.2.1), in order of preference

	// Set when the user has logged in and consented.
	Done     bool
	UserID   string
	Subject  string
	AuthTime time.Time
	AMR      []string
	ACR      string

	CodeHash []byte
	Consumed bool
}

// TokenKind tells access from refresh tokens.
type TokenKind string

const (
	TokenAccess  TokenKind = "access"
	TokenRefresh TokenKind = "refresh"
)

// Token is an issued access or refresh token. Refresh tokens are found by the hash of their
// value; access tokens carry their ID (encrypted).
type Token struct {
	ID        string
	Kind      TokenKind
	Hash      []byte
	FamilyID  string
	UserID    string
	Subject   string // as the client sees it
	ClientID  string
	Scopes    []string
	AMR       []string
	ACR       string
	AuthTime  time.Time
	DeviceID  string   // kiosk the session was opened at, if any
	Audience  []string // resource indicators (RFC 8707) the token is for; the grant's, on a refresh token
	CreatedAt time.Time
	ExpiresAt time.Time
	Revoked   bool
	Rotated   bool
}

// Grant is one token family as a citizen sees it in their session list.
type Grant struct {
	FamilyID  string    `json:"id"`
	ClientID  string    `json:"clientId"`
	DeviceID  string    `json:"kioskId,omitempty"`
	AMR       []string  `json:"amr"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// Device authorization states.
const (
	DeviceAuthPending  = "pending"
	DeviceAuthApproved = "approved"
	DeviceAuthDenied   = "denied"
	DeviceAuthIssued   = "issued"
)

// DeviceAuth is a device authorization request (RFC 8628).
type DeviceAuth struct {
	CodeHash  []byte
	UserCode  string
	ClientID  string
	Scopes    []string
	KioskID   string   // the kiosk that asked, verified by its assertion
	Resources []string // resource indicators asked for (RFC 8707), checked against the client
	CreatedAt time.Time
	ExpiresAt time.Time
	Interval  time.Duration
	LastPoll  time.Time
	State     string
	UserID    string
	Subject   string
	AMR       []string
	AuthTime  time.Time
}

// SigningKey is a private key of the provider, encrypted at rest: a signing key (Use "sig") or
// the key kiosks encrypt their assertions to (Use "enc").
type SigningKey struct {
	ID         string
	Alg        string
	Use        string // KeyUseSig (also when empty) or KeyUseEnc
	PrivateEnc []byte // AES-GCM of the PKCS #8 DER
	CreatedAt  time.Time
	RetiredAt  time.Time // zero while active
}

// BrowserSession is a login at the provider's pages.
type BrowserSession struct {
	Hash      []byte
	UserID    string
	AMR       []string
	AuthTime  time.Time
	ExpiresAt time.Time
}
