package localapi

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/kiosklogin"
	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// cardHolder is the ID card data a reader driver returns (*idcard.Identity).
type cardHolder interface {
	devices.Identity
	Type() idcard.CardType
	Name() string
	Number() string
}

var _ cardHolder = (*idcard.Identity)(nil)

// Holder is what apps see of a card: its type and the holder's name and number, masked.
type Holder struct {
	CardType string `json:"cardType"` // resident, hk-mo-tw-residence-permit, foreigner-permanent-residence-2017 or -2023
	Name     string `json:"name"`     // 张*丰
	Number   string `json:"number"`   // 4401**********124X
}

func maskHolder(h cardHolder) Holder {
	return Holder{CardType: h.Type().String(), Name: MaskName(h.Name()), Number: idcard.MaskNumber(h.Number())}
}

// MaskName keeps a name's first and last characters: 张*丰, 欧阳**锋, 张* (two characters keep
// only the first), and hides a one-character name.
func MaskName(s string) string {
	r := []rune(strings.TrimSpace(s))
	switch len(r) {
	case 0:
		return ""
	case 1:
		return "*"
	case 2:
		return string(r[0]) + "*"
	}
	return string(r[0]) + strings.Repeat("*", len(r)-2) + string(r[len(r)-1])
}

// readCard waits until a card is read on reader device (asking every CardPoll while there is
// none; IdCard.InsertCardEvent says it waits), then passes it to use. The card is wiped when use
// returns; nothing of it is kept.
func (r *request) readCard(ctx context.Context, device string, use func(cardHolder) error) error {
	waiting := false
	t := time.NewTicker(r.s.srv.cfg.CardPoll)
	defer t.Stop()
	for {
		err := r.s.srv.cfg.Devices.ReadCard(ctx, device, func(id devices.Identity) error {
			h, ok := id.(cardHolder)
			if !ok {
				return fail(CodeInternalError, "reader %s returned no ID card data", device)
			}
			return use(h)
		})
		var st idcard.Status
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, idcard.StatusNoCard), errors.Is(err, idcard.StatusSelectFailed):
			if !waiting {
				waiting = true
				r.emit("IdCard.InsertCardEvent", devicePayload{device})
			}
		case errors.As(err, &st) && st.Fault():
			return fail(CodeHardwareError, "reader %s: %v", device, st)
		case errors.As(err, &st), errors.Is(err, idcard.ErrMisread):
			// The card moved, or is not a card this reader reads (XFS4IoT userError).
			return &Error{Code: CodeUserError, ErrorCode: "cardNotRead", Detail: map[string]any{"device": device},
				Description: "the card on reader " + device + " could not be read; place it flat on the reader and try again"}
		default:
			return deviceErr(device, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// IdCard.Read {device?}: wait for a card and return its holder, masked.
func idCardRead(ctx context.Context, r *request) (any, error) {
	device, release, err := r.takeNamed("ID card reader", profile.ClassIDReader)
	if err != nil {
		return nil, err
	}
	defer release()
	var out Holder
	err = r.readCard(ctx, device, func(h cardHolder) error {
		out = maskHolder(h)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"device": device, "holder": out}, nil
}

// LoginResult is the completion of Login.IdCard: the hub session of the citizen whose card was
// read, for the shell to call the hub with, and the holder, masked.
type LoginResult struct {
	Device      string `json:"device"`
	ACR         string `json:"acr"` // how the citizen logged in: idcard
	AccessToken string `json:"accessToken"`
	IDToken     string `json:"idToken,omitempty"`
	ExpiresIn   int64  `json:"expiresIn"` // seconds
	Holder      Holder `json:"holder"`
}

// Login.IdCard {device?}: wait for a card and log its holder in at the hub. The card's number
// and name go only into the assertion the agent signs (agent/kiosklogin) and are wiped after.
func loginIdCard(ctx context.Context, r *request) (any, error) {
	auth := r.s.srv.cfg.Login
	if auth == nil {
		return nil, fail(CodeUnsupportedCommand, "this agent does not log citizens in: it is not enrolled with a hub")
	}
	device, release, err := r.takeNamed("ID card reader", profile.ClassIDReader)
	if err != nil {
		return nil, err
	}
	defer release()
	var out LoginResult
	err = r.readCard(ctx, device, func(h cardHolder) error {
		card := wire.IDCard{Number: []byte(h.Number()), Name: h.Name()}
		defer card.Wipe()
		sess, err := auth.LoginIDCard(ctx, card)
		switch {
		case errors.Is(err, kiosklogin.ErrRefused):
			return &Error{Code: CodeCommandErrorCode, ErrorCode: "loginRefused", Detail: map[string]any{"device": device},
				Description: "the hub refused the login: " + err.Error()}
		case err != nil && ctx.Err() == nil:
			return &Error{Code: CodeCommandErrorCode, ErrorCode: "hubUnavailable", Detail: map[string]any{"device": device},
				Description: "the hub could not be reached to log in: " + err.Error()}
		case err != nil:
			return err
		}
		out = LoginResult{Device: device, ACR: "idcard", AccessToken: sess.AccessToken, IDToken: sess.IDToken,
			ExpiresIn: int64(sess.ExpiresIn / time.Second), Holder: maskHolder(h)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
