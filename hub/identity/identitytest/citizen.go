package identitytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/sms"
	"github.com/kioskfleet/kioskfleet/hub/identity/sms/smstest"
)

// Localhost serves the provider as http://localhost:PORT rather than 127.0.0.1: WebAuthn needs
// a domain as relying party ID, so passkeys are on only then.
func Localhost(c *identity.Config) {
	c.Issuer = strings.Replace(c.Issuer, "://127.0.0.1:", "://localhost:", 1)
}

// WithDevSMS sends phone codes with the development sender, to the file at path.
func WithDevSMS(path string) func(*identity.Config) {
	return func(c *identity.Config) {
		s, err := sms.NewDevFile(path)
		if err != nil {
			panic(err)
		}
		c.SMS = s
	}
}

var dataRE = regexp.MustCompile(`data-([a-z]+)="([^"]*)"`)

// block returns the data attributes of the page's element with the HTML id.
func block(p *Page, id string) (map[string]string, error) {
	i := strings.Index(p.Body, `id="`+id+`"`)
	if i < 0 {
		return nil, fmt.Errorf("no #%s on page %s (status %d): %.300s", id, p.URL, p.Status, p.Body)
	}
	end := strings.Index(p.Body[i:], ">")
	attrs := map[string]string{}
	for _, m := range dataRE.FindAllStringSubmatch(p.Body[i:i+end], -1) {
		attrs[m[1]] = html.UnescapeString(m[2])
	}
	return attrs, nil
}

// postJSON posts to the provider as the page's script does and decodes the JSON answer.
func (b *Browser) postJSON(u string, body []byte, form url.Values, out any) error {
	var req *http.Request
	if form != nil {
		req, _ = http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req, _ = http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.C.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d %s", u, resp.StatusCode, raw)
	}
	return json.Unmarshal(raw, out)
}

type ceremony struct {
	Ceremony  string          `json:"ceremony"`
	PublicKey json.RawMessage `json:"publicKey"`
}

// PasskeyLogin does what the login page's script does when the passkey button is pressed, with
// the authenticator, and follows the provider's answer: the page it ends on (Loc set when it
// redirects to a client).
func (b *Browser) PasskeyLogin(login *Page, a *Authenticator) (*Page, error) {
	d, err := block(login, "passkey")
	if err != nil {
		return nil, err
	}
	var c ceremony
	if err := b.postJSON(b.issuer+d["begin"]+"?lang="+d["lang"], nil,
		url.Values{"id": {d["id"]}, "next": {d["next"]}, "csrf": {d["csrf"]}}, &c); err != nil {
		return nil, err
	}
	cred, err := a.Get(c.PublicKey)
	if err != nil {
		return nil, err
	}
	var done struct {
		Next string `json:"next"`
	}
	if err := b.postJSON(b.issuer+d["finish"]+"?ceremony="+url.QueryEscape(c.Ceremony), cred, nil, &done); err != nil {
		return nil, err
	}
	next, err := url.Parse(done.Next)
	if err != nil {
		return nil, err
	}
	return b.Get(login.URL.ResolveReference(next).String())
}

// AddPasskey does what the account page's script does when a passkey is added.
func (b *Browser) AddPasskey(account *Page, a *Authenticator, name string) error {
	d, err := block(account, "passkey-add")
	if err != nil {
		return err
	}
	var c ceremony
	if err := b.postJSON(b.issuer+d["begin"], nil, url.Values{"csrf": {d["csrf"]}, "name": {name}}, &c); err != nil {
		return err
	}
	cred, err := a.Create(c.PublicKey)
	if err != nil {
		return err
	}
	var out map[string]string
	return b.postJSON(b.issuer+d["finish"]+"?ceremony="+url.QueryEscape(c.Ceremony), cred, nil, &out)
}

// PhoneLogin asks on the login page for a code to number, reads it from the development
// sender's file and enters it: the page it ends on.
func (b *Browser) PhoneLogin(login *Page, number, smsFile string) (*Page, error) {
	p, err := b.Submit(login, url.Values{"phone": {number}})
	if err != nil {
		return nil, err
	}
	if !strings.Contains(p.Body, `name="code"`) {
		return nil, fmt.Errorf("no code page: %d %.300s", p.Status, p.Body)
	}
	e164, err := identity.NormalizePhone(number)
	if err != nil {
		return nil, err
	}
	code, err := smstest.LastCode(smsFile, e164)
	if err != nil {
		return nil, err
	}
	return b.Submit(p, url.Values{"code": {code}})
}
