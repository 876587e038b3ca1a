package identity

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Real-name binding: a citizen logged in on her phone with a passkey scans a kiosk's QR code
// (the device grant of the kiosk shell, RFC 8628) and on the approval page chooses to verify
// her real name; then she taps her ID card on that kiosk. The kiosk sends the card as for an
// ID-card login (the JWT bearer grant, the card encrypted to the hub) with the device_code of
// that QR code; the hub binds the card's keyed hash (and the card, encrypted) to the account
// that approved, if the assertion was signed by the very kiosk that showed the code. The
// account's passkey logins then carry urn:kioskfleet:acr:realname. A card is bound to one
// account at a time: another account binds it only after the first unbinds it on its account
// page, except a card-only account, which the binding merges (the package doc says why).

// ParamDeviceCode names, on the ID-card login (JWT bearer grant), the device_code of the QR
// login the citizen approved for real-name binding.
const ParamDeviceCode = "device_code"

const ceremonyCardBind = "card-bind"

// cardBinding is what an approval for binding keeps until the kiosk reads the card.
type cardBinding struct {
	AccountID string `json:"account"`
	KioskID   string `json:"kiosk"`
}

// canBind reports whether the session may bind a card at a kiosk: a citizen's account, with no
// card yet, logged in with a passkey (a phone code alone is too weak to take on a real name).
func canBind(acct store.Account, s store.BrowserSession) bool {
	level, _ := sessionACR(acct, s.AMR)
	return acct.Kind == "citizen" && len(acct.IDNumberHash) == 0 && level >= levelPasskey
}

// approveBinding records that the account approved the kiosk's QR login to bind a card.
func (p *Provider) approveBinding(ctx context.Context, d store.DeviceAuth, accountID string) error {
	doc, err := json.Marshal(cardBinding{AccountID: accountID, KioskID: d.KioskID})
	if err != nil {
		return err
	}
	return p.st.PutCeremony(ctx, store.Ceremony{ID: hex.EncodeToString(d.CodeHash), Kind: ceremonyCardBind, Doc: doc,
		ExpiresAt: d.ExpiresAt.Add(ceremonyTTL)})
}

// errCardBound marks a card bound to another account.
var errCardBound = errors.New("identity: the card is bound to another account")

// bindCard binds the card read by the kiosk of claims to the account that approved the QR
// login of deviceCode for binding, and returns that account. Its errors are OAuth errors for
// the kiosk, and never hold the card.
func (p *Provider) bindCard(ctx context.Context, claims *wire.KioskClaims, card *wire.IDCard, deviceCode string) (store.Account, error) {
	c, err := p.st.TakeCeremony(ctx, hex.EncodeToString(sha(deviceCode)), ceremonyCardBind, p.now())
	if errors.Is(err, store.ErrNotFound) {
		return store.Account{}, oidc.ErrInvalidGrant().WithDescription("no real-name binding was approved for this device_code")
	}
	if err != nil {
		return store.Account{}, oidc.ErrServerError().WithParent(err)
	}
	var b cardBinding
	if err := json.Unmarshal(c.Doc, &b); err != nil {
		return store.Account{}, oidc.ErrServerError().WithParent(err)
	}
	if b.KioskID != claims.Issuer {
		return store.Account{}, invalidAssertion("the card was read at another kiosk than the one whose code was approved")
	}
	plain, err := json.Marshal(card)
	if err != nil {
		return store.Account{}, oidc.ErrServerError().WithParent(err)
	}
	enc := seal(p.sec.idAEAD, plain, []byte(b.AccountID)) // bound to the account, as citizenByCard's
	clear(plain)
	hash := p.sec.idHash(string(card.Number))
	err = p.st.BindIDCard(ctx, b.AccountID, hash, enc)
	if errors.Is(err, store.ErrExists) {
		err = p.mergeCardOnly(ctx, hash, enc, b.AccountID)
	}
	switch {
	case errors.Is(err, store.ErrExists):
		p.log.Info("id card binding refused: bound to another account", "kiosk", claims.Issuer, "account", b.AccountID)
		return store.Account{}, oidc.ErrAccessDenied().WithDescription("%v: unbind it there first", errCardBound)
	case errors.Is(err, store.ErrConflict):
		return store.Account{}, oidc.ErrAccessDenied().WithDescription("the account holds another ID card: unbind it first")
	case err != nil:
		return store.Account{}, oidc.ErrServerError().WithParent(err)
	}
	acct, err := p.st.GetAccount(ctx, b.AccountID)
	if err != nil {
		return store.Account{}, oidc.ErrServerError().WithParent(err)
	}
	p.log.Info("id card bound", "kiosk", claims.Issuer, "account", acct.ID)
	return acct, nil
}

// AccountMerged is an optional capability of an AccountDeleted hook: told that the card-only
// account from was merged into the account into (realname.go), before it is told of from's
// deletion, it carries over what the citizen must keep (her cases). It must be idempotent.
type AccountMerged interface {
	AccountMerged(ctx context.Context, from, into string, at time.Time) error
}

// mergeCardOnly merges the card-only account holding the card with hash into the account into,
// the card bound to it (enc, encrypted for into). It returns store.ErrExists when the card is
// held by an account that is not card-only.
func (p *Provider) mergeCardOnly(ctx context.Context, hash, enc []byte, into string) error {
	holder, err := p.st.AccountByIDHash(ctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound): // unbound since: bind it
		return p.st.BindIDCard(ctx, into, hash, enc)
	case err != nil:
		return err
	case holder.Kind != "citizen" || holder.Username != "" || holder.PasswordHash != "":
		return store.ErrExists
	}
	now := p.now()
	// The store checks again, in the merge's transaction, that the holder has no credential.
	if err := p.st.MergeCardAccount(ctx, holder.ID, into, hash, enc, now); errors.Is(err, store.ErrConflict) {
		return store.ErrExists
	} else if err != nil {
		return err
	}
	p.log.Info("card-only account merged into the account binding its card", "from", holder.ID, "into", into)
	if a, ok := p.st.(store.StaffAudit); ok {
		if _, err := a.AppendAudit(ctx, store.StaffAction{At: now, Actor: into, Roles: RoleCitizen,
			Action: "real-name binding: card-only account merged", Target: "/oidc/accounts/" + holder.ID,
			Status: 200, Result: "ok"}); err != nil {
			p.log.Error("card-only account merge not audited", "from", holder.ID, "err", err)
		}
	}
	for _, h := range p.cfg.AccountHooks {
		if m, ok := h.(AccountMerged); ok {
			if err := m.AccountMerged(ctx, holder.ID, into, now); err != nil {
				p.log.Error("card-only account merge not carried", "from", holder.ID, "err", err)
			}
		}
	}
	p.finishDeletion(ctx, store.Deletion{AccountID: holder.ID, DeletedAt: now})
	return nil
}
