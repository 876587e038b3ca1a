package identity

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// SMSSender sends a one-time login code to a phone number (E.164), valid for ttl, in the
// citizen's language ("zh" or "en"). hub/identity/sms has an HTTP gateway and, for development
// only, a file.
type SMSSender interface {
	SendCode(ctx context.Context, to, code string, ttl time.Duration, lang string) error
}

var (
	// ErrPhone marks a phone number this provider does not take.
	ErrPhone = errors.New("identity: not a mainland China mobile number (11 digits, 13 to 19 first)")
	// ErrPhoneCode is the one answer to a code that does not log in, whatever the cause (wrong,
	// expired, used, too many tries, or no code sent), so that it tells nothing of the number.
	ErrPhoneCode = errors.New("identity: the code is wrong or no longer valid")
	// errSMS marks a code the SMS sender could not send.
	errSMS = errors.New("identity: the code could not be sent")
)

// NormalizePhone returns a mainland China mobile number in E.164 (+861XXXXXXXXXX) from what a
// citizen typed: the 11 digits, with spaces, dashes or brackets, after +86, 0086 or 86 or not.
// Its error never contains the number.
func NormalizePhone(s string) (string, error) {
	if len(s) > 40 {
		return "", ErrPhone
	}
	var b strings.Builder
	for i, r := range strings.TrimSpace(s) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '(' || r == ')' || r == '\u00a0':
		case r == '+' && i == 0:
			b.WriteRune(r)
		default:
			return "", ErrPhone
		}
	}
	n := b.String()
	for _, prefix := range []string{"+86", "0086"} {
		n = strings.TrimPrefix(n, prefix)
	}
	if len(n) == 13 && strings.HasPrefix(n, "86") {
		n = n[2:]
	}
	if len(n) != 11 || n[0] != '1' || n[1] < '3' {
		return "", ErrPhone
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return "", ErrPhone
		}
	}
	return "+86" + n, nil
}

// maskPhone shows a number as 138****8000.
func maskPhone(e164 string) string {
	n := strings.TrimPrefix(e164, "+86")
	if len(n) != 11 {
		return "***"
	}
	return n[:3] + "****" + n[7:]
}

// phoneKey is the lookup hash of a number, also the key of the codes sent to it.
func (s *secrets) phoneKey(e164 string) []byte { return mac(s.phoneHMAC, "number", e164) }

// codeHash is the hash of a code sent to a number, as the store keeps it.
func (s *secrets) codeHash(e164, code string) []byte { return mac(s.phoneHMAC, "code", e164, code) }

const codeDigits = 6

func newCode() string {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return fmt.Sprintf("%06d", n.Int64())
}

// SendPhoneCode sends a new one-time code to a number and returns the number in E.164. It does
// not look at accounts: a number new to the provider gets a code as one it knows does (its
// first login registers it), so that neither the answer nor its time tells them apart. Errors:
// ErrPhone, store.ErrLimited (the number's limits), errSMS.
func (p *Provider) SendPhoneCode(ctx context.Context, number, lang string) (string, error) {
	if p.cfg.SMS == nil {
		return "", errSMS
	}
	e164, err := NormalizePhone(number)
	if err != nil {
		return "", err
	}
	code, now := newCode(), p.now()
	c := store.PhoneCode{Key: p.sec.phoneKey(e164), CodeHash: p.sec.codeHash(e164, code), CreatedAt: now,
		ExpiresAt: now.Add(p.cfg.PhoneCodeTTL)}
	if err := p.st.IssuePhoneCode(ctx, c, p.cfg.PhoneCodes); err != nil {
		return e164, err
	}
	if err := p.cfg.SMS.SendCode(ctx, e164, code, p.cfg.PhoneCodeTTL, lang); err != nil {
		p.log.Warn("phone code not sent", "err", err) // never the number or the code
		return e164, fmt.Errorf("%w: %w", errSMS, err)
	}
	return e164, nil
}

// PhoneLogin checks a code sent to a number and returns the number's account, registering a
// citizen account for a number not seen before: the code proves the number is the citizen's.
// A code is good for PhoneCodeTries attempts and one login. Every failure is ErrPhoneCode.
func (p *Provider) PhoneLogin(ctx context.Context, number, code string) (store.Account, error) {
	e164, err := NormalizePhone(number)
	code = strings.TrimSpace(code)
	if err != nil || len(code) != codeDigits {
		return store.Account{}, ErrPhoneCode
	}
	key := p.sec.phoneKey(e164)
	err = p.st.VerifyPhoneCode(ctx, key, p.sec.codeHash(e164, code), p.now(), p.cfg.PhoneCodeTries)
	if errors.Is(err, store.ErrNotFound) {
		return store.Account{}, ErrPhoneCode
	}
	if err != nil {
		return store.Account{}, err
	}
	acct, err := p.st.AccountByPhone(ctx, key)
	if !errors.Is(err, store.ErrNotFound) {
		return acct, err
	}
	return p.registerPhone(ctx, e164, key)
}

// registerPhone creates a citizen account for a verified number.
func (p *Provider) registerPhone(ctx context.Context, e164 string, key []byte) (store.Account, error) {
	return p.registerCitizen(ctx, "phone", func(acct store.Account) error {
		return p.st.SetPhone(ctx, store.Phone{AccountID: acct.ID, Hash: key,
			Enc: seal(p.sec.phoneAEAD, []byte(e164), []byte(acct.ID)), VerifiedAt: acct.CreatedAt})
	}, func() (store.Account, error) { return p.st.AccountByPhone(ctx, key) })
}

// registerCitizen creates a citizen account with its first way to log in, which attach stores
// and which is unique: when another request stored the same one first (ErrExists), that
// account wins, ours goes, and existing returns the winner.
func (p *Provider) registerCitizen(ctx context.Context, by string, attach func(store.Account) error,
	existing func() (store.Account, error)) (store.Account, error) {
	now := p.now()
	acct := store.Account{ID: "c_" + randomToken(12), Kind: "citizen", Roles: []string{RoleCitizen}, CreatedAt: now}
	if err := p.st.CreateAccount(ctx, acct); err != nil {
		return store.Account{}, err
	}
	if err := attach(acct); err != nil {
		if derr := p.st.DeleteAccount(ctx, acct.ID, now); derr == nil {
			p.st.FinishDeletion(ctx, acct.ID) // nobody else has heard of it
		}
		if errors.Is(err, store.ErrExists) {
			return existing()
		}
		return store.Account{}, err
	}
	p.log.Info("citizen registered", "account", acct.ID, "by", by)
	return acct, nil
}

// phoneOf returns the account's number in E.164, or "" if it has none.
func (p *Provider) phoneOf(ctx context.Context, accountID string) string {
	ph, err := p.st.PhoneOf(ctx, accountID)
	if err != nil {
		return ""
	}
	b, err := open(p.sec.phoneAEAD, ph.Enc, []byte(accountID))
	if err != nil {
		p.log.Error("phone number does not decrypt", "account", accountID)
		return ""
	}
	return string(b)
}

// servePhoneSend sends a code to the number of the login form: POST /oidc/phone/send.
func (p *Provider) servePhoneSend(w http.ResponseWriter, r *http.Request) {
	v, ok := p.phoneForm(w, r, "login")
	if !ok {
		return
	}
	e164, err := p.SendPhoneCode(r.Context(), r.PostForm.Get("phone"), v.Lang)
	switch {
	case errors.Is(err, ErrPhone):
		v.Error = "err_phone"
		p.loginPage(w, r, v, http.StatusBadRequest)
		return
	case errors.Is(err, store.ErrLimited):
		v.Info = "phone_wait"
	case errors.Is(err, errSMS):
		v.Error = "err_sms"
		p.loginPage(w, r, v, http.StatusServiceUnavailable)
		return
	case err != nil:
		p.log.Error("phone code failed", "err", err)
		v.Error = "err_server"
		p.render(w, "message", http.StatusInternalServerError, v)
		return
	}
	p.codePage(w, r, v, e164, http.StatusOK)
}

func (p *Provider) codePage(w http.ResponseWriter, r *http.Request, v *view, e164 string, status int) {
	v.Title, v.PhoneNumber, v.Masked = "title_phone_code", e164, maskPhone(e164)
	v.CSRF = p.formToken(w, r, "phone", v.ID, e164)
	p.render(w, "phone", status, v)
}

// servePhoneVerify logs in with the code: POST /oidc/phone/verify.
func (p *Provider) servePhoneVerify(w http.ResponseWriter, r *http.Request) {
	e164, _ := NormalizePhone(r.FormValue("phone"))
	v, ok := p.phoneForm(w, r, "phone", e164)
	if !ok {
		return
	}
	acct, err := p.PhoneLogin(r.Context(), e164, r.PostForm.Get("code"))
	if err != nil {
		if !errors.Is(err, ErrPhoneCode) {
			p.log.Error("phone login failed", "err", err)
		}
		v.Error = "err_phone_code"
		p.codePage(w, r, v, e164, http.StatusUnauthorized)
		return
	}
	next, err := p.loggedIn(w, r, acct, []string{amrSMS}, v.ID, v.Next)
	p.redirectTo(w, r, next, err)
}

// phoneForm reads a posted phone form and checks its token (made for purpose and the request).
func (p *Provider) phoneForm(w http.ResponseWriter, r *http.Request, purpose string, extra ...string) (*view, bool) {
	v := p.view(r, "title_login")
	if p.cfg.SMS == nil {
		http.Error(w, "phone login is not configured on this hub", http.StatusNotFound)
		return v, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		v.Error = "err_request"
		p.render(w, "message", http.StatusBadRequest, v)
		return v, false
	}
	v.ID, v.Next = r.PostForm.Get("id"), r.PostForm.Get("next")
	if err := p.checkForm(r, append([]string{purpose, v.ID}, extra...)...); err != nil {
		p.refuseForm(w, r, v, err)
		return v, false
	}
	if v.ID != "" {
		if a, err := p.liveRequest(r.Context(), v.ID); err == nil {
			v.StepUp = demanded(a)
		}
	}
	return v, true
}
