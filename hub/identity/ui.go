package identity

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	pagefs "github.com/kioskfleet/kioskfleet/hub/identity/pages"
	"github.com/kioskfleet/kioskfleet/hub/store"
)

const (
	cookieName = "kf_sid"
	sessionTTL = 12 * time.Hour
	// formCookie binds every form to the browser that loaded it. Over https it is a __Host-
	// cookie, which a sibling host cannot set (RFC 6265bis §4.1.3.2).
	formCookie       = "kf_form"
	formCookieSecure = "__Host-kf_form"
)

// Why a form was refused (see checkForm).
var (
	errNoFormCookie = errors.New("the browser sent no form cookie")
	errFormToken    = errors.New("the form's token is not for this browser and form")
)

var texts = map[string]map[string]string{
	"zh": {
		"title_login": "登录", "title_consent": "授权确认", "title_done": "完成",
		"title_device": "确认在其他设备上登录", "title_device_kiosk": "扫码登录确认", "title_device_code": "输入验证码",
		"login_to_approve": "登录后确认这个验证码的登录：",
		"login_for":        "登录以继续使用", "username": "用户名", "password": "密码", "login": "登录",
		"err_login": "用户名或密码错误，或尝试次数过多，请稍后再试。", "err_request": "登录请求无效或已过期，请返回重新开始。",
		"err_csrf":     "页面已过期，或是在另一个浏览器中打开的，请重新打开页面后再试。",
		"err_cookie":   "浏览器没有带上本站的 Cookie，无法确认表单来自本页面。请允许本站使用 Cookie，然后重新打开页面。",
		"consent_asks": "请求访问您的以下信息：", "approve": "同意", "deny": "拒绝",
		"scope_openid": "您的身份标识", "scope_profile": "您的姓名", "scope_offline_access": "在您离开后保持登录",
		"scope_fleet_api": "以您的身份管理自助终端设备",
		"device_asks": "以下应用请求登录您的账号：", "at_kiosk": "自助终端：", "at_site": "地点：",
		"phishing_kiosk": "请确认您本人正站在上述地点的这台自助终端前。如果不是，请点击“拒绝”。",
		"phishing":       "只有在您本人刚刚在自己的设备上发起此登录时才能同意。如有疑问，请点击“拒绝”。",
		"code":           "验证码", "enter_code": "请输入要登录的设备上显示的验证码", "continue": "继续",
		"err_code": "验证码无效或已过期。", "err_guesses": "输入错误次数过多，请稍后重新发起登录。",
		"done_approved_kiosk": "已同意，请返回终端继续。", "done_denied_kiosk": "已拒绝，终端不会登录。",
		"done_approved": "已同意，请回到发起登录的设备继续。", "done_denied": "已拒绝，该设备不会登录。",
		"done_logout": "您已安全退出。", "err_server": "服务暂时不可用，请稍后再试。",
	},
	"en": {
		"title_login": "Log in", "title_consent": "Confirm access", "title_done": "Done",
		"title_device": "Confirm a login on another device", "title_device_kiosk": "Confirm QR login at a kiosk",
		"title_device_code": "Enter the code", "login_to_approve": "Log in to confirm the login with code",
		"login_for": "Log in to continue to", "username": "Username", "password": "Password", "login": "Log in",
		"err_login":    "Wrong username or password, or too many attempts. Please try again later.",
		"err_request":  "This login request is invalid or has expired. Please start again.",
		"err_csrf":     "This page has expired or was opened in another browser. Please open it again and retry.",
		"err_cookie":   "Your browser did not send this site's cookie, so this form cannot be checked. Allow cookies for this site, then open the page again.",
		"consent_asks": "asks to access:", "approve": "Approve", "deny": "Deny",
		"scope_openid": "your identifier", "scope_profile": "your name", "scope_offline_access": "staying logged in when you are away",
		"scope_fleet_api": "managing the kiosk fleet as you",
		"device_asks": "This application asks to log in to your account:", "at_kiosk": "Kiosk:", "at_site": "Location:",
		"phishing_kiosk": "Approve only if you are standing at this kiosk at this place now. Otherwise press Deny.",
		"phishing":       "Approve only if you have just started this login on your own device. If in doubt, press Deny.",
		"code":           "Code", "enter_code": "Enter the code shown on the device you are logging in", "continue": "Continue",
		"err_code": "The code is invalid or has expired.", "err_guesses": "Too many wrong codes. Please start the login again later.",
		"done_approved_kiosk": "Approved. Please go back to the kiosk.", "done_denied_kiosk": "Denied. The kiosk will not be logged in.",
		"done_approved": "Approved. Go back to the device where you started the login.", "done_denied": "Denied. That device will not be logged in.",
		"done_logout": "You are logged out.", "err_server": "The service is unavailable. Please try again later.",
	},
}

func translate(lang, key string) string {
	if s, ok := texts[lang][key]; ok {
		return s
	}
	if s, ok := texts["zh"][key]; ok {
		return s
	}
	return key
}

type pages struct{ t map[string]*template.Template }

func newPages() (*pages, error) {
	ps := &pages{t: map[string]*template.Template{}}
	for _, name := range []string{"login", "consent", "device", "message"} {
		t, err := template.New(name).Funcs(template.FuncMap{"t": translate}).ParseFS(pagefs.FS, "layout.html", name+".html")
		if err != nil {
			return nil, err
		}
		ps.t[name] = t
	}
	return ps, nil
}

// view is the data of every page.
type view struct {
	Lang, Title, Error string
	query              url.Values

	ID, Next, CSRF, Client string
	Scopes                 []string
	UserCode, Kiosk        string
	Site, Address, Done    string
}

func (v *view) LangQuery(lang string) template.URL {
	q := url.Values{}
	for k, vs := range v.query {
		q[k] = vs
	}
	q.Set("lang", lang)
	return template.URL(q.Encode())
}

func (p *Provider) view(r *http.Request, title string) *view {
	lang := "zh"
	if l := r.URL.Query().Get("lang"); l == "en" || l == "zh" {
		lang = l
	} else if al := r.Header.Get("Accept-Language"); strings.HasPrefix(al, "en") {
		lang = "en"
	}
	q := r.URL.Query()
	q.Del("lang")
	return &view{Lang: lang, Title: title, query: q}
}

func (p *Provider) render(w http.ResponseWriter, page string, status int, v *view) {
	var buf bytes.Buffer
	if err := p.pages.t[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		p.log.Error("render page failed", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8") // security headers: pageHeaders
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// --- browser sessions and CSRF

func (p *Provider) browserSession(r *http.Request) (store.BrowserSession, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return store.BrowserSession{}, false
	}
	s, err := p.st.GetBrowserSession(r.Context(), sha(c.Value))
	if err != nil || !p.now().Before(s.ExpiresAt) {
		return store.BrowserSession{}, false
	}
	return s, true
}

func (p *Provider) startSession(ctx context.Context, w http.ResponseWriter, a store.Account, amr []string) (store.BrowserSession, error) {
	v := randomToken(32)
	now := p.now()
	s := store.BrowserSession{Hash: sha(v), UserID: a.ID, AMR: amr, AuthTime: now, ExpiresAt: now.Add(sessionTTL)}
	if err := p.st.CreateBrowserSession(ctx, s); err != nil {
		return s, err
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: v, Path: "/oidc/", HttpOnly: true,
		Secure: strings.HasPrefix(p.cfg.Issuer, "https:"), SameSite: http.SameSiteLaxMode, MaxAge: int(sessionTTL / time.Second)})
	return s, nil
}

// formToken returns the anti-forgery token of a form: an HMAC, under the hub's key, of the
// browser's form cookie (set here when it has none), the form's purpose and what it acts on (the
// auth request, the browser session, the user code). A token is good only in the browser that
// loaded the form, for that form (OWASP CSRF Prevention Cheat Sheet, signed double-submit
// cookie); without the cookie binding, a login form's token could be fetched by an attacker
// and posted from the victim's browser (login CSRF).
func (p *Provider) formToken(w http.ResponseWriter, r *http.Request, parts ...string) string {
	name, secure := p.formCookieName()
	c, err := r.Cookie(name)
	if err != nil || len(c.Value) != 43 { // 32 random bytes, base64url
		c = &http.Cookie{Name: name, Value: randomToken(32), Path: "/", HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode}
		http.SetCookie(w, c)
	}
	return p.formMAC(c.Value, parts)
}

func (p *Provider) formMAC(cookie string, parts []string) string {
	return base64.RawURLEncoding.EncodeToString(mac(p.sec.cookieHMAC, append([]string{"form", cookie}, parts...)...))
}

// checkForm checks a posted form's token against the browser's form cookie: errNoFormCookie
// when the browser sent none, errFormToken when the token is for another browser or form.
func (p *Provider) checkForm(r *http.Request, parts ...string) error {
	name, _ := p.formCookieName()
	c, err := r.Cookie(name)
	if err != nil || c.Value == "" {
		return errNoFormCookie
	}
	if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(p.formMAC(c.Value, parts))) {
		return errFormToken
	}
	return nil
}

func (p *Provider) formCookieName() (name string, secure bool) {
	if strings.HasPrefix(p.cfg.Issuer, "https:") {
		return formCookieSecure, true
	}
	return formCookie, false
}

// refuseForm answers a form that failed checkForm, saying why.
func (p *Provider) refuseForm(w http.ResponseWriter, r *http.Request, v *view, err error) {
	p.log.Info("form refused", "path", r.URL.Path, "err", err)
	v.Error = "err_csrf"
	if errors.Is(err, errNoFormCookie) {
		v.Error = "err_cookie"
	}
	p.render(w, "message", http.StatusForbidden, v)
}

func sessionKey(s store.BrowserSession) string { return base64.RawURLEncoding.EncodeToString(s.Hash) }

// --- login

func (p *Provider) serveLogin(w http.ResponseWriter, r *http.Request) {
	v := p.view(r, "title_login")
	switch r.Method {
	case http.MethodGet:
		v.ID, v.Next = r.URL.Query().Get("id"), r.URL.Query().Get("next")
		if v.ID != "" {
			a, err := p.st.GetAuthRequest(r.Context(), v.ID)
			if err != nil || a.Done || !p.now().Before(a.ExpiresAt) {
				v.Error = "err_request"
				p.render(w, "message", http.StatusBadRequest, v)
				return
			}
			// A kiosk is shared: its logins never ride on (or leave) a browser session.
			s, ok := p.browserSession(r)
			if ok && !a.Kiosk && !slices.Contains(a.Prompt, oidc.PromptLogin) {
				p.continueAuth(w, r, a, s)
				return
			}
			if slices.Contains(a.Prompt, oidc.PromptNone) { // OIDC Core §3.1.2.6
				p.authError(w, r, a, "login_required")
				return
			}
			if c, err := p.client(r.Context(), a.ClientID); err == nil {
				v.Client = c.Name
			}
		}
		v.UserCode = nextUserCode(v.Next)
		v.CSRF = p.formToken(w, r, "login", v.ID)
		p.render(w, "login", http.StatusOK, v)
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			v.Error = "err_request"
			p.render(w, "message", http.StatusBadRequest, v)
			return
		}
		v.ID, v.Next = r.PostForm.Get("id"), r.PostForm.Get("next")
		v.UserCode = nextUserCode(v.Next)
		if err := p.checkForm(r, "login", v.ID); err != nil {
			p.refuseForm(w, r, v, err)
			return
		}
		acct, err := p.PasswordLogin(r.Context(), r.PostForm.Get("username"), r.PostForm.Get("password"))
		if err != nil {
			if !errors.Is(err, ErrLogin) {
				p.log.Error("password login failed", "err", err)
			}
			v.Error, v.CSRF = "err_login", p.formToken(w, r, "login", v.ID)
			p.render(w, "login", http.StatusUnauthorized, v)
			return
		}
		var a store.AuthRequest
		if v.ID != "" {
			if a, err = p.st.GetAuthRequest(r.Context(), v.ID); err != nil || a.Done || !p.now().Before(a.ExpiresAt) {
				v.Error = "err_request"
				p.render(w, "message", http.StatusBadRequest, v)
				return
			}
		}
		s := store.BrowserSession{UserID: acct.ID, AMR: []string{"pwd"}, AuthTime: p.now()}
		if !a.Kiosk {
			if s, err = p.startSession(r.Context(), w, acct, s.AMR); err != nil {
				p.log.Error("browser session failed", "err", err)
				v.Error = "err_server"
				p.render(w, "message", http.StatusInternalServerError, v)
				return
			}
		}
		if v.ID == "" {
			q := url.Values{}
			if uc := nextUserCode(v.Next); uc != "" {
				q.Set("user_code", uc)
			}
			if l := r.URL.Query().Get("lang"); l != "" {
				q.Set("lang", v.Lang)
			}
			http.Redirect(w, r, devicePath+"?"+q.Encode(), http.StatusSeeOther)
			return
		}
		p.continueAuth(w, r, a, s)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// continueAuth binds the logged-in user to the auth request and asks for consent unless the
// client is first-party.
func (p *Provider) continueAuth(w http.ResponseWriter, r *http.Request, a store.AuthRequest, s store.BrowserSession) {
	c, err := p.client(r.Context(), a.ClientID)
	if err != nil {
		v := p.view(r, "title_login")
		v.Error = "err_request"
		p.render(w, "message", http.StatusBadRequest, v)
		return
	}
	a.UserID, a.Subject, a.AuthTime, a.AMR = s.UserID, p.sec.subject(c, s.UserID), s.AuthTime, s.AMR
	a.ACR = ACRPassword
	a.Done = c.FirstParty
	if err := p.st.SaveAuthRequest(r.Context(), a); err != nil {
		p.log.Error("save auth request failed", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if a.Done {
		http.Redirect(w, r, op.AuthCallbackURL(p.op)(p.issuerCtx(r.Context()), a.ID), http.StatusSeeOther)
		return
	}
	if slices.Contains(a.Prompt, oidc.PromptNone) {
		p.authError(w, r, a, "consent_required")
		return
	}
	v := p.view(r, "title_consent")
	v.ID, v.Client, v.Scopes, v.CSRF = a.ID, c.Name, a.Scopes, p.formToken(w, r, "consent", sessionKey(s), a.ID)
	if len(a.Resources) > 0 { // the fleet API, the only resource there is
		v.Scopes = append(slices.Clip(v.Scopes), "fleet_api")
	}
	p.render(w, "consent", http.StatusOK, v)
}

func (p *Provider) serveConsent(w http.ResponseWriter, r *http.Request) {
	v := p.view(r, "title_consent")
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s, ok := p.browserSession(r)
	id := r.PostForm.Get("id")
	if err := p.checkForm(r, "consent", sessionKey(s), id); !ok || err != nil {
		p.refuseForm(w, r, v, cmp.Or(err, errFormToken))
		return
	}
	a, err := p.st.GetAuthRequest(r.Context(), id)
	if err != nil || a.UserID != s.UserID || !p.now().Before(a.ExpiresAt) {
		v.Error = "err_request"
		p.render(w, "message", http.StatusBadRequest, v)
		return
	}
	if r.PostForm.Get("action") != "approve" {
		p.authError(w, r, a, "access_denied") // OIDC Core §3.1.2.6: the end-user denied
		return
	}
	a.Done = true
	if err := p.st.SaveAuthRequest(r.Context(), a); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, op.AuthCallbackURL(p.op)(p.issuerCtx(r.Context()), a.ID), http.StatusSeeOther)
}

// authError ends an authorization request with an error sent to the client's (registered,
// already validated) redirect URI.
func (p *Provider) authError(w http.ResponseWriter, r *http.Request, a store.AuthRequest, code string) {
	q := url.Values{"error": {code}}
	if a.State != "" {
		q.Set("state", a.State)
	}
	p.st.DeleteAuthRequest(r.Context(), a.ID)
	http.Redirect(w, r, a.RedirectURI+sep(a.RedirectURI)+q.Encode(), http.StatusSeeOther)
}

func sep(u string) string {
	if strings.Contains(u, "?") {
		return "&"
	}
	return "?"
}

// --- device approval

func (p *Provider) serveDevice(w http.ResponseWriter, r *http.Request) {
	v := p.view(r, "title_device_code")
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		v.Error = "err_request"
		p.render(w, "message", http.StatusBadRequest, v)
		return
	}
	code := normalizeUserCode(r.Form.Get("user_code"))
	s, ok := p.browserSession(r)
	if !ok && r.Method == http.MethodPost { // a decision without a session: expired, or forged
		p.refuseForm(w, r, v, cmp.Or(p.checkForm(r, "device", "", code), errFormToken))
		return
	}
	if !ok {
		lv := p.view(r, "title_login")
		if code != "" {
			lv.Next, lv.UserCode = "user_code="+url.QueryEscape(code), code
		}
		lv.CSRF = p.formToken(w, r, "login", "")
		p.render(w, "login", http.StatusOK, lv)
		return
	}
	sk := sessionKey(s)
	if code == "" {
		p.render(w, "device", http.StatusOK, v)
		return
	}
	if !p.guess(r.Context(), s.UserID, false) {
		v.Error = "err_guesses"
		p.render(w, "message", http.StatusTooManyRequests, v)
		return
	}
	d, err := p.st.DeviceAuthByUserCode(r.Context(), code)
	if err != nil || d.State != store.DeviceAuthPending || !p.now().Before(d.ExpiresAt) {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			p.log.Error("device auth failed", "err", err)
		}
		if !p.guess(r.Context(), s.UserID, true) {
			v.Error = "err_guesses"
			p.render(w, "message", http.StatusTooManyRequests, v)
			return
		}
		v.Error = "err_code"
		p.render(w, "device", http.StatusBadRequest, v)
		return
	}
	c, err := p.client(r.Context(), d.ClientID)
	if err != nil {
		v.Error = "err_code"
		p.render(w, "device", http.StatusBadRequest, v)
		return
	}
	v.Title = "title_device"
	kiosk := ""
	if d.KioskID != "" {
		v.Title, kiosk = "title_device_kiosk", "_kiosk"
	}
	if r.Method == http.MethodPost {
		if err := p.checkForm(r, "device", sk, code); err != nil {
			p.refuseForm(w, r, v, err)
			return
		}
		d.State, v.Done, v.Title = store.DeviceAuthDenied, "done_denied"+kiosk, "title_done"
		if r.PostForm.Get("action") == "approve" {
			d.State, v.Done = store.DeviceAuthApproved, "done_approved"+kiosk
			d.UserID, d.Subject, d.AMR, d.AuthTime = s.UserID, p.sec.subject(c, s.UserID), s.AMR, s.AuthTime
		}
		if err := p.st.DecideDeviceAuth(r.Context(), code, d, p.now()); err != nil {
			v.Done, v.Error, v.Title = "", "err_code", "title_device_code"
			p.render(w, "device", http.StatusBadRequest, v)
			return
		}
		p.render(w, "message", http.StatusOK, v)
		return
	}
	v.UserCode, v.Client, v.CSRF = code, c.Name, p.formToken(w, r, "device", sk, code)
	if d.KioskID != "" {
		v.Kiosk = d.KioskID
		if dev, err := p.devices.GetDevice(r.Context(), d.KioskID); err == nil {
			if sl, ok := p.devices.(SiteLookup); ok {
				if site, err := sl.GetSite(r.Context(), dev.SiteID); err == nil {
					v.Site, v.Address = site.Name, site.Address
				}
			}
		}
	}
	p.render(w, "device", http.StatusOK, v)
}

// nextUserCode is the user code a login continues to (next is "user_code=CODE"), or "".
func nextUserCode(next string) string {
	uc, ok := strings.CutPrefix(next, "user_code=")
	if !ok {
		return ""
	}
	code, _ := url.QueryUnescape(uc)
	return code
}

func (p *Provider) serveLoggedOut(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(cookieName); err == nil {
		p.st.DeleteBrowserSession(r.Context(), sha(c.Value))
		http.SetCookie(w, &http.Cookie{Name: cookieName, Path: "/oidc/", MaxAge: -1})
	}
	v := p.view(r, "title_done")
	v.Done = "done_logout"
	p.render(w, "message", http.StatusOK, v)
}

// serveEndSession ends the browser session at the provider, then lets op answer the
// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2): revoke the client's tokens
// of the subject and redirect to a registered post_logout_redirect_uri.
func (p *Provider) serveEndSession(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(cookieName); err == nil {
		p.st.DeleteBrowserSession(r.Context(), sha(c.Value))
		http.SetCookie(w, &http.Cookie{Name: cookieName, Path: "/oidc/", MaxAge: -1})
	}
	p.op.ServeHTTP(w, r)
}
