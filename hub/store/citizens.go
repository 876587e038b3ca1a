package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrLimited marks a request refused because a limit was reached (IssuePhoneCode).
var ErrLimited = errors.New("store: limit reached")

// Citizens keeps what the OpenID Provider knows of a citizen beyond the account row: passkeys,
// the phone number and its one-time codes, links to upstream identities, consents given to
// clients, the bound ID card, one-time ceremony state, and the deletion of an account with
// everything of it. It is part of Identity (tables idp_*, migrations 0100-0199).
type Citizens interface {
	Passkeys
	Phones
	Links
	Consents
	Ceremonies

	// BindIDCard binds an ID card (keyed hash and encrypted data) to the account: ErrExists when
	// another account holds the hash, ErrConflict when the account holds another card,
	// ErrNotFound when there is no such account. Binding the card it holds again is no change.
	BindIDCard(ctx context.Context, accountID string, hash, enc []byte) error
	// UnbindIDCard removes the account's card; ErrNotFound when it has none.
	UnbindIDCard(ctx context.Context, accountID string) error
	// MergeCardAccount binds the card with hash (and enc, its data encrypted for into) held by
	// the card-only account from to the account into, and deletes from, in one transaction
	// (hub/identity realname.go). from must be a citizen holding that card and no other
	// credential (no username, password, passkey, phone or upstream link), and into must hold
	// no card: ErrConflict otherwise; ErrNotFound when either is missing. from's consents are
	// carried to into where into has none for the client; the rest of from goes as in
	// DeleteAccount, its deletion pending until FinishDeletion.
	MergeCardAccount(ctx context.Context, from, into string, hash, enc []byte, at time.Time) error

	// ListBrowserSessions returns the account's live browser sessions at now, newest first.
	ListBrowserSessions(ctx context.Context, userID string, now time.Time) ([]BrowserSession, error)
	// DeleteBrowserSessions ends the account's browser sessions except the one with hash except.
	DeleteBrowserSessions(ctx context.Context, userID string, except []byte) error

	// DeleteAccount removes the account and all the identity store keeps of it (passkeys,
	// phone and codes sent to it, links, consents, browser sessions, tokens, device
	// authorizations, counts of wrong user codes) in one transaction, and records the deletion as pending until
	// FinishDeletion, so that the rooms told of it (hub/identity AccountDeleted) are told again
	// after a failure. ErrNotFound when there is no such account.
	DeleteAccount(ctx context.Context, id string, at time.Time) error
	// PendingDeletions returns the deletions not yet finished, oldest first.
	PendingDeletions(ctx context.Context) ([]Deletion, error)
	// FinishDeletion forgets a pending deletion.
	FinishDeletion(ctx context.Context, id string) error
}

// Passkeys keeps citizens' WebAuthn credentials.
type Passkeys interface {
	// AddPasskey stores a credential; ErrExists on a duplicate credential ID.
	AddPasskey(ctx context.Context, k Passkey) error
	GetPasskey(ctx context.Context, id []byte) (Passkey, error)
	// ListPasskeys returns the account's credentials, oldest first.
	ListPasskeys(ctx context.Context, accountID string) ([]Passkey, error)
	// UsePasskey records a use: the credential's new state (signature counter, flags) and time.
	UsePasskey(ctx context.Context, id, credential []byte, at time.Time) error
	// DeletePasskey removes one of the account's credentials; ErrNotFound if it has no such one.
	DeletePasskey(ctx context.Context, accountID string, id []byte) error
}

// Phones keeps citizens' verified phone numbers and the one-time codes sent to numbers.
type Phones interface {
	// SetPhone sets the account's number (replacing one it had); ErrExists when another account
	// has it, ErrNotFound when there is no such account.
	SetPhone(ctx context.Context, p Phone) error
	PhoneOf(ctx context.Context, accountID string) (Phone, error)
	// AccountByPhone returns the account with the number's hash.
	AccountByPhone(ctx context.Context, hash []byte) (Account, error)

	// IssuePhoneCode stores a new code for the number c.Key, replacing any earlier one, unless
	// the number's limits forbid it (ErrLimited): more than MaxSends in Window, or an earlier
	// code sent less than MinInterval ago.
	IssuePhoneCode(ctx context.Context, c PhoneCode, l PhoneCodeLimits) error
	// VerifyPhoneCode counts an attempt at the number's live code and, when codeHash is its
	// hash, spends it, in one step: nil when it was spent by this call; ErrNotFound when the
	// number has no live code at now with that hash (none sent, spent, replaced, expired,
	// maxTries attempts counted already, or another code: that attempt is counted).
	VerifyPhoneCode(ctx context.Context, key, codeHash []byte, now time.Time, maxTries int) error
}

// Links keeps upstream identities (connectors of hub/identity) linked to accounts.
type Links interface {
	// AddLink stores a link; ErrExists when the upstream identity is linked already.
	AddLink(ctx context.Context, l Link) error
	GetLink(ctx context.Context, connector, subject string) (Link, error)
	// ListLinks returns the account's links, oldest first.
	ListLinks(ctx context.Context, accountID string) ([]Link, error)
	// DeleteLink removes one of the account's links; ErrNotFound if it has no such one.
	DeleteLink(ctx context.Context, accountID, connector, subject string) error
}

// Consents keeps what citizens consented to give clients that ask (departments' apps).
type Consents interface {
	// PutConsent inserts or replaces the account's consent to the client.
	PutConsent(ctx context.Context, c Consent) error
	GetConsent(ctx context.Context, accountID, clientID string) (Consent, error)
	// ListConsents returns the account's consents by client ID.
	ListConsents(ctx context.Context, accountID string) ([]Consent, error)
	// DeleteConsent withdraws a consent; ErrNotFound if there is none.
	DeleteConsent(ctx context.Context, accountID, clientID string) error
}

// Ceremonies keeps the state of a step that spans two requests (a WebAuthn challenge, an
// upstream login's state and nonce), to be taken once.
type Ceremonies interface {
	// PutCeremony stores a ceremony; ErrExists on a duplicate ID.
	PutCeremony(ctx context.Context, c Ceremony) error
	// TakeCeremony removes and returns the ceremony of the kind; ErrNotFound when there is none
	// (never made, taken already, or expired at now).
	TakeCeremony(ctx context.Context, id, kind string, now time.Time) (Ceremony, error)
}

// Passkey is a WebAuthn credential of an account.
type Passkey struct {
	ID         []byte // credential ID
	AccountID  string
	Name       string // given by the citizen
	Credential []byte // the credential (public key, counter, flags) as the provider encodes it
	CreatedAt  time.Time
	LastUsed   time.Time // zero until first used
}

// Phone is an account's verified phone number.
type Phone struct {
	AccountID  string
	Hash       []byte // keyed hash of the normalized number, for lookup
	Enc        []byte // the number, encrypted and bound to the account
	VerifiedAt time.Time
}

// PhoneCode is a one-time code sent to a phone number, kept only as a hash.
type PhoneCode struct {
	Key       []byte // keyed hash of the number
	CodeHash  []byte // keyed hash of the number and the code
	CreatedAt time.Time
	ExpiresAt time.Time
}

// PhoneCodeLimits bound the codes sent to one number.
type PhoneCodeLimits struct {
	Window      time.Duration
	MaxSends    int           // codes per Window
	MinInterval time.Duration // between two codes
}

// Next applies the limits to a new code at now, given the number's earlier code if it has one
// (sent at created, in a window begun at start with sends codes): the window's start and count
// with the new code, or ErrLimited. Backends call it in the transaction of IssuePhoneCode.
func (l PhoneCodeLimits) Next(earlier bool, created, start time.Time, sends int, now time.Time) (time.Time, int, error) {
	if !earlier || now.Sub(start) >= l.Window {
		return now, 1, nil
	}
	if now.Sub(created) < l.MinInterval {
		return start, sends, fmt.Errorf("phone code: one sent %s ago: %w", now.Sub(created).Round(time.Second), ErrLimited)
	}
	if sends >= l.MaxSends {
		return start, sends, fmt.Errorf("phone code: %d sent in the window: %w", sends, ErrLimited)
	}
	return start, sends + 1, nil
}

// Link ties an upstream identity to an account.
type Link struct {
	Connector string // the connector's ID
	Subject   string // the upstream identity as the provider keeps it (a keyed hash)
	AccountID string
	Name      string // what the citizen sees, e.g. the upstream nickname
	CreatedAt time.Time
}

// Consent is what an account consented to give a client.
type Consent struct {
	AccountID string
	ClientID  string
	Scopes    []string
	GrantedAt time.Time
}

// Ceremony is one-time state of a multi-request step.
type Ceremony struct {
	ID        string
	Kind      string
	Doc       []byte
	ExpiresAt time.Time
}

// Deletion is a deleted account whose deletion other rooms may not have heard of yet.
type Deletion struct {
	AccountID string
	DeletedAt time.Time
}
