package identity

import (
	"bytes"
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
)

var texts = map[string]map[string]string{
	"zh": {
		"title_login": "登录", "title_consent": "授权确认", "title_device": "扫码登录确认", "title_done": "完成",
		"login_for": "登录以继续使用", "username": "用户名", "password": "密码", "login": "登录",
		"err_login": "用户名或密码错误，或尝试次数过多，请稍后再试。", "err_request": "登录请求无效或已过期，请返回重新开始。",
		"err_csrf": "页面已过期，请重试。", "consent_asks": "请求访问您的以下信息：", "approve": "同意", "deny": "拒绝",
		"scope_openid": "您的身份标识", "scope_profile": "您的姓名", "scope_offline_access": "在您离开后保持登录",
		"scope_fleet_api": "以您的身份管理自助终端设备",
		"device_asks": "以下应用请求登录您的账号：", "at_kiosk": "自助终端：", "at_site": "地点：",
		"phishing_kiosk": "请确认您本人正站在上述地点的这台自助终端前。如果不是，请点击“拒绝”。",
		"phishing":       "只有在您本人刚刚在自己的设备上发起此登录时才能同意。如有疑问，请点击“拒绝”。",
		"code":           "验证码", "enter_code": "请输入终端上显示的验证码", "continue": "继续",
		"err_code": "验证码无效或已过期。", "err_guesses": "输入错误次数过多，请在终端上重新开始。",
		"done_approved": "已同意，请返回终端继续。", "done_denied": "已拒绝，终端不会登录。",
		"done_logout": "您已安全退出。", "err_server": "服务暂时不可用，请稍后再试。",
	},
	"en": {
		"title_login": "Log in", "title_consent": "Confirm access", "title_device": "Confirm QR login", "title_done": "Done",
		"login_for": "Log in to continue to", "username": "Username", "password": "Password", "login": "Log in",
		"err_login":   "Wrong username or password, or too many attempts. Please try again later.",
		"err_request": "This login request is invalid or has expired. Please start again.",
		"err_csrf":    "This page has expired. Please try again.", "consent_asks": "asks to access:", "approve": "Approve", "deny": "Deny",
		"scope_openid": "your identifier", "scope_profile": "your name", "scope_offline_access": "staying logged in when you are away",
		"scope_fleet_api": "managing the kiosk fleet as you",
		"device_asks": "This application asks to log in to your account:", "at_kiosk": "Kiosk:", "at_site": "Location:",
		"phishing_kiosk": "Approve only if you are standing at this kiosk at this place now. Otherwise press Deny.",
		"phishing":       "Approve only if you have just started this login on your own device. If in doubt, press Deny.",
		"code":           "Code", "enter_code": "Enter the code shown on the screen", "continue": "Continue",
		"err_code": "The code is invalid or has expired.", "err_guesses": "Too many wrong codes. Please start again at the kiosk.",
		"done_approved": "Approved. Please go back to the kiosk.", "done_denied": "Denied. The kiosk will not be logged in.",
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
		p.log.Error("identity: render page", "page", page, "err", err)
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

// csrf binds a form to its purpose and to the browser session (or the auth request).
func (p *Provider) csrf(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString(mac(p.sec.cookieHMAC, parts...))
}

func (p *Provider) csrfOK(r *http.Request, parts ...string) bool {
	return hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(p.csrf(parts...)))
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
		v.CSRF = p.csrf("login", v.ID)
		p.render(w, "login", http.StatusOK, v)
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			v.Error = "err_request"
			p.render(w, "message", http.StatusBadRequest, v)
			return
		}
		v.ID, v.Next = r.PostForm.Get("id"), r.PostForm.Get("next")
		if !p.csrfOK(r, "login", v.ID) {
			v.Error = "err_csrf"
			p.render(w, "message", http.StatusForbidden, v)
			return
		}
		acct, err := p.PasswordLogin(r.Context(), r.PostForm.Get("username"), r.PostForm.Get("password"))
		if err != nil {
			if !errors.Is(err, ErrLogin) {
				p.log.Error("identity: password login", "err", err)
			}
			v.Error, v.CSRF = "err_login", p.csrf("login", v.ID)
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
				p.log.Error("identity: browser session", "err", err)
				v.Error = "err_server"
				p.render(w, "message", http.StatusInternalServerError, v)
				return
			}
		}
		if v.ID == "" {
			next := devicePath
			if uc := r.PostForm.Get("next"); strings.HasPrefix(uc, "user_code=") {
				next += "?" + uc
			}
			http.Redirect(w, r, next, http.StatusSeeOther)
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
		p.log.Error("identity: save auth request", "err", err)
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
	v.ID, v.Client, v.Scopes, v.CSRF = a.ID, c.Name, a.Scopes, p.csrf("consent", sessionKey(s), a.ID)
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
	if !ok || !p.csrfOK(r, "consent", sessionKey(s), id) {
		v.Error = "err_csrf"
		p.render(w, "message", http.StatusForbidden, v)
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
	v := p.view(r, "title_device")
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		v.Error = "err_request"
		p.render(w, "message", http.StatusBadRequest, v)
		return
	}
	code := normalizeUserCode(r.Form.Get("user_code"))
	s, ok := p.browserSession(r)
	if !ok {
		lv := p.view(r, "title_login")
		if code != "" {
			lv.Next = "user_code=" + url.QueryEscape(code)
		}
		lv.CSRF = p.csrf("login", "")
		p.render(w, "login", http.StatusOK, lv)
		return
	}
	sk := sessionKey(s)
	if code == "" {
		p.render(w, "device", http.StatusOK, v)
		return
	}
	if !p.guess(s.UserID, false) {
		v.Error = "err_guesses"
		p.render(w, "message", http.StatusTooManyRequests, v)
		return
	}
	d, err := p.st.DeviceAuthByUserCode(r.Context(), code)
	if err != nil || d.State != store.DeviceAuthPending || !p.now().Before(d.ExpiresAt) {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			p.log.Error("identity: device auth", "err", err)
		}
		if !p.guess(s.UserID, true) {
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
	if r.Method == http.MethodPost {
		if !p.csrfOK(r, "device", sk, code) {
			v.Error = "err_csrf"
			p.render(w, "message", http.StatusForbidden, v)
			return
		}
		d.State, v.Done = store.DeviceAuthDenied, "done_denied"
		if r.PostForm.Get("action") == "approve" {
			d.State, v.Done = store.DeviceAuthApproved, "done_approved"
			d.UserID, d.Subject, d.AMR, d.AuthTime = s.UserID, p.sec.subject(c, s.UserID), s.AMR, s.AuthTime
		}
		if err := p.st.DecideDeviceAuth(r.Context(), code, d, p.now()); err != nil {
			v.Done, v.Error = "", "err_code"
			p.render(w, "device", http.StatusBadRequest, v)
			return
		}
		p.render(w, "message", http.StatusOK, v)
		return
	}
	v.UserCode, v.Client, v.CSRF = code, c.Name, p.csrf("device", sk, code)
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
