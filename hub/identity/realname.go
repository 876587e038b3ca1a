package identity

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"

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
// page.

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
	switch err := p.st.BindIDCard(ctx, b.AccountID, p.sec.idHash(string(card.Number)), enc); {
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
