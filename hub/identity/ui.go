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
	"github.com/kioskfleet/kioskfleet/hub/ratelimit"
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
		"scope_fleet_api": "以您的身份管理自助终端设备", "scope_citizen_api": "查看您的办件进度、服务推荐，提交评价",
		"device_asks": "以下应用请求登录您的账号：", "at_kiosk": "自助终端：", "at_site": "地点：",
		"phishing_kiosk": "请确认您本人正站在上述地点的这台自助终端前。如果不是，请点击“拒绝”。",
		"phishing":       "只有在您本人刚刚在自己的设备上发起此登录时才能同意。如有疑问，请点击“拒绝”。",
		"code":           "验证码", "enter_code": "请输入要登录的设备上显示的验证码", "continue": "继续",
		"err_code": "验证码无效或已过期。", "err_guesses": "输入错误次数过多，请稍后重新发起登录。",
		"done_approved_kiosk": "已同意，请返回终端继续。", "done_denied_kiosk": "已拒绝，终端不会登录。",
		"done_approved": "已同意，请回到发起登录的设备继续。", "done_denied": "已拒绝，该设备不会登录。",
		"done_logout": "您已安全退出。", "err_server": "服务暂时不可用，请稍后再试。",

		"title_account": "我的账号", "title_phone_code": "输入短信验证码", "title_realname": "需要实名认证",
		"stepup_2":        "此服务要求使用通行密钥登录（指纹、面容或手机锁屏密码），以确保是您本人。",
		"stepup_3":        "此服务要求实名认证：请使用通行密钥登录，并已在自助终端上刷身份证完成实名绑定。",
		"realname_needed": "此服务要求实名认证的账号。请到任意政务服务大厅的自助终端，在手机上扫描终端上的二维码并刷您的身份证，完成后再回来使用此服务。",
		"back_to_service": "返回服务",
		"passkey_login":   "使用通行密钥登录", "passkey_waiting": "请按手机或电脑的提示验证指纹、面容或锁屏密码……",
		"passkey_cancelled":   "已取消。可以再试一次，或使用短信验证码登录。",
		"passkey_unsupported": "此浏览器不支持通行密钥，请使用短信验证码登录。",
		"phone_login":         "短信验证码登录", "phone": "手机号码", "send_code": "获取验证码",
		"phone_new":      "未注册的手机号将自动创建账号。",
		"upstream_login": "使用其他账号登录", "staff_login": "工作人员登录",
		"code_sent": "如果该号码可以接收短信，验证码已发送至", "code_label": "6 位验证码",
		"phone_wait":      "验证码发送过于频繁，请稍后再获取；之前收到的验证码在有效期内仍可使用。",
		"err_phone":       "请输入正确的 11 位中国大陆手机号码。",
		"err_sms":         "短信暂时无法发送，请稍后再试，或使用其他方式登录。",
		"err_phone_code":  "验证码不正确或已失效，请重新获取。",
		"err_passkey_off": "此站点未开启通行密钥。", "err_passkey_again": "操作已过期，请重试。",
		"err_passkey": "通行密钥验证未通过。", "err_session": "登录已过期，请重新登录。",
		"err_passkey_exists": "这个通行密钥已经添加过了。", "passkey": "通行密钥",
		"account_of": "当前账号：", "my_passkeys": "我的通行密钥", "added": "添加于", "last_used": "最近使用",
		"remove": "删除", "no_passkeys": "还没有通行密钥。添加后可以用指纹或面容快速登录。",
		"passkey_name": "名称（可选）", "passkey_name_hint": "例如：我的手机", "passkey_add": "添加通行密钥",
		"my_phone": "我的手机号", "no_phone": "未绑定手机号", "logout": "退出登录",
		"err_last_credential": "这是您账号唯一的登录方式，不能删除。请先添加其他通行密钥或手机号。",
		"text_large":          "大字", "text_normal": "标准字号",
		"my_data": "我的数据", "export": "下载我的数据（JSON）",
		"err_reauth": "为了您的账号安全，请先退出并重新登录，再添加通行密钥或注销账号。",
		"bind":       "同意，并刷身份证完成实名认证", "bind_hint": "同意后，请在这台自助终端上刷您本人的身份证。",
		"done_bind":   "已同意。请在终端上刷您本人的身份证，完成实名认证。",
		"err_bind":    "此账号现在不能实名绑定：请使用通行密钥登录，且账号尚未绑定身份证。",
		"my_realname": "实名认证", "realname_yes": "已实名认证（已在自助终端刷身份证绑定）。",
		"realname_no": "未实名认证。到政务服务大厅的自助终端，用手机扫描终端上的二维码并刷身份证即可完成。",
		"card_unbind": "解除身份证绑定", "my_consents": "我授权的部门应用", "no_consents": "没有授权过任何部门应用。",
		"granted": "授权于", "withdraw": "撤回授权", "my_links": "关联的其他账号", "no_links": "没有关联其他账号。",
		"unlink": "解除关联", "link": "关联",
		"err_upstream":         "无法通过该账号登录，请重试或使用其他方式登录。",
		"err_upstream_again":   "此次登录已失效（已使用、已过期或在另一个浏览器中发起），请返回重新开始。",
		"err_upstream_refused": "您已取消授权，未登录。",
		"err_link_stepup":      "为了您的账号安全，关联其他账号前请先用本账号的通行密钥或短信验证码重新登录（10 分钟内有效）。",
		"err_link_taken":       "这个账号已经关联到另一个账号（或已关联到您的账号）。如需改为关联此账号，请先在原账号中解除关联。", "my_sessions": "其他设备上的登录", "sessions_other": "其他设备上仍登录的会话数：",
		"sessions_end": "退出其他所有设备", "delete_account": "注销账号",
		"delete_warn":    "注销后，账号、通行密钥、手机号、关联账号和授权都将被删除，办事记录不再与您关联，且无法恢复。",
		"delete_confirm": "我确认注销此账号", "err_confirm_delete": "请先勾选确认注销。",
		"done_deleted": "您的账号已注销，相关个人信息已删除。", "err_staff_delete": "工作人员账号需由管理员删除。",
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
		"scope_fleet_api": "managing the kiosk fleet as you", "scope_citizen_api": "reading your cases and recommendations, rating services",
		"device_asks": "This application asks to log in to your account:", "at_kiosk": "Kiosk:", "at_site": "Location:",
		"phishing_kiosk": "Approve only if you are standing at this kiosk at this place now. Otherwise press Deny.",
		"phishing":       "Approve only if you have just started this login on your own device. If in doubt, press Deny.",
		"code":           "Code", "enter_code": "Enter the code shown on the device you are logging in", "continue": "Continue",
		"err_code": "The code is invalid or has expired.", "err_guesses": "Too many wrong codes. Please start the login again later.",
		"done_approved_kiosk": "Approved. Please go back to the kiosk.", "done_denied_kiosk": "Denied. The kiosk will not be logged in.",
		"done_approved": "Approved. Go back to the device where you started the login.", "done_denied": "Denied. That device will not be logged in.",
		"done_logout": "You are logged out.", "err_server": "The service is unavailable. Please try again later.",

		"title_account": "My account", "title_phone_code": "Enter the text message code", "title_realname": "Real-name verification needed",
		"stepup_2":        "This service asks you to log in with a passkey (fingerprint, face or your phone's screen lock), to be sure it is you.",
		"stepup_3":        "This service asks for a real-name account: log in with a passkey, on an account verified with your ID card at a kiosk.",
		"realname_needed": "This service needs a real-name verified account. At a self-service kiosk in any service hall, scan the kiosk's QR code with your phone and tap your ID card; then come back to this service.",
		"back_to_service": "Back to the service",
		"passkey_login":   "Log in with a passkey", "passkey_waiting": "Follow your phone's or computer's prompt: fingerprint, face or screen lock…",
		"passkey_cancelled":   "Cancelled. Try again, or log in with a text message code.",
		"passkey_unsupported": "This browser does not support passkeys. Log in with a text message code.",
		"phone_login":         "Log in with a text message code", "phone": "Mobile number", "send_code": "Send me a code",
		"phone_new":      "A number not registered yet gets a new account.",
		"upstream_login": "Log in with another account", "staff_login": "Staff login",
		"code_sent": "If this number can receive text messages, a code was sent to", "code_label": "6-digit code",
		"phone_wait":      "Codes were asked for too often. Wait a little before asking again; a code you received is still good until it expires.",
		"err_phone":       "Enter a valid 11-digit mainland China mobile number.",
		"err_sms":         "Text messages cannot be sent right now. Try again later, or log in another way.",
		"err_phone_code":  "The code is wrong or no longer valid. Ask for a new one.",
		"err_passkey_off": "Passkeys are not enabled on this site.", "err_passkey_again": "This took too long. Please try again.",
		"err_passkey": "The passkey was not accepted.", "err_session": "Your login has expired. Please log in again.",
		"err_passkey_exists": "This passkey was added already.", "passkey": "Passkey",
		"account_of": "Account:", "my_passkeys": "My passkeys", "added": "added", "last_used": "last used",
		"remove": "Remove", "no_passkeys": "No passkey yet. With one you log in by fingerprint or face.",
		"passkey_name": "Name (optional)", "passkey_name_hint": "e.g. my phone", "passkey_add": "Add a passkey",
		"my_phone": "My mobile number", "no_phone": "No mobile number", "logout": "Log out",
		"err_last_credential": "This is the only way to log in to your account, so it cannot be removed. Add another passkey or a mobile number first.",
		"text_large":          "Large text", "text_normal": "Normal text",
		"my_data": "My data", "export": "Download my data (JSON)",
		"err_reauth": "To keep your account safe, log out and log in again before adding a passkey or deleting the account.",
		"bind":       "Approve, and verify my real name with my ID card", "bind_hint": "After approving, tap your own ID card on this kiosk.",
		"done_bind":   "Approved. Tap your own ID card on the kiosk to finish the real-name verification.",
		"err_bind":    "This account cannot bind a card now: log in with a passkey, on an account with no card bound.",
		"my_realname": "Real-name verification", "realname_yes": "Verified: your ID card was bound at a kiosk.",
		"realname_no": "Not verified. At a kiosk in a service hall, scan the kiosk's QR code with your phone and tap your ID card.",
		"card_unbind": "Unbind my ID card", "my_consents": "Department apps I allowed", "no_consents": "You have allowed no department app.",
		"granted": "allowed on", "withdraw": "Withdraw", "my_links": "Linked accounts", "no_links": "No linked accounts.",
		"unlink": "Unlink", "link": "Link",
		"err_upstream":         "Logging in with that account failed. Try again, or log in another way.",
		"err_upstream_again":   "This login is no longer valid (used, expired, or started in another browser). Go back and start again.",
		"err_upstream_refused": "You cancelled at the other provider: you are not logged in.",
		"err_link_stepup":      "To keep your account safe, log in again with this account's passkey or a phone code (within 10 minutes) before linking another account.",
		"err_link_taken":       "That account is linked already (to another account, or to yours). To move it, unlink it from the other account first.", "my_sessions": "Logins on other devices", "sessions_other": "Sessions still logged in on other devices:",
		"sessions_end": "Log out all other devices", "delete_account": "Delete my account",
		"delete_warn":    "Deleting removes your account, passkeys, mobile number, linked accounts and consents; your service records are no longer tied to you. This cannot be undone.",
		"delete_confirm": "I confirm deleting this account", "err_confirm_delete": "Tick the box to confirm the deletion first.",
		"done_deleted": "Your account is deleted, with the personal data it held.", "err_staff_delete": "A staff account is deleted by an administrator.",
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
	for _, name := range []string{"login", "consent", "device", "message", "phone", "unmet", "account"} {
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
	Bind                   bool // the device page offers real-name binding at the kiosk

	// The login page: the level a request asks for (levelNone when it asks for none), the ways
	// offered, and on the code page the number (E.164) the code went to.
	StepUp                    int
	Passkeys, Phone, Password bool
	Upstreams                 []upstreamButton
	PhoneNumber, Masked       string
	Info                      string

	// The account page.
	Account     *accountView
	AccountPath string

	// Large type (the layout's toggle, kept in a cookie); text is the toggle's answer to keep.
	Large bool
	text  string
}

func (v *view) LangQuery(lang string) template.URL {
	q := url.Values{}
	for k, vs := range v.query {
		q[k] = vs
	}
	q.Del("text")
	q.Set("lang", lang)
	return template.URL(q.Encode())
}

// TextQuery is the page's query with the type size set.
func (v *view) TextQuery(size string) template.URL {
	q, _ := url.ParseQuery(string(v.LangQuery(v.Lang)))
	q.Set("text", size)
	return template.URL(q.Encode())
}

// textCookie keeps the citizen's choice of large type.
const textCookie = "kf_text"

func (p *Provider) view(r *http.Request, title string) *view {
	lang := "zh"
	if l := r.URL.Query().Get("lang"); l == "en" || l == "zh" {
		lang = l
	} else if al := r.Header.Get("Accept-Language"); strings.HasPrefix(al, "en") {
		lang = "en"
	}
	q := r.URL.Query()
	q.Del("lang")
	v := &view{Lang: lang, Title: title, query: q, AccountPath: accountPath}
	switch t := r.URL.Query().Get("text"); t {
	case "large", "normal":
		v.text, v.Large = t, t == "large"
	default:
		c, err := r.Cookie(textCookie)
		v.Large = err == nil && c.Value == "large"
	}
	return v
}

func (p *Provider) render(w http.ResponseWriter, page string, status int, v *view) {
	var buf bytes.Buffer
	if err := p.pages.t[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		p.log.Error("render page failed", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if v.text != "" {
		http.SetCookie(w, &http.Cookie{Name: textCookie, Value: v.text, Path: "/", MaxAge: 365 * 24 * 3600,
			SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(p.cfg.Issuer, "https:")})
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
	return p.checkToken(r, r.PostForm.Get("csrf"), parts...)
}

// checkToken is checkForm of a token sent otherwise (in a link's query).
func (p *Provider) checkToken(r *http.Request, token string, parts ...string) error {
	name, _ := p.formCookieName()
	c, err := r.Cookie(name)
	if err != nil || c.Value == "" {
		return errNoFormCookie
	}
	if !hmac.Equal([]byte(token), []byte(p.formMAC(c.Value, parts))) {
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
			a, err := p.liveRequest(r.Context(), v.ID)
			if err != nil {
				v.Error = "err_request"
				p.render(w, "message", http.StatusBadRequest, v)
				return
			}
			// A kiosk is shared: its logins never ride on (or leave) a browser session.
			s, ok := p.browserSession(r)
			if ok && !a.Kiosk && !slices.Contains(a.Prompt, oidc.PromptLogin) {
				if p.continueSession(w, r, a, s, v) {
					return
				}
			}
			if slices.Contains(a.Prompt, oidc.PromptNone) { // OIDC Core §3.1.2.6
				p.authError(w, r, a, "login_required")
				return
			}
			if c, err := p.client(r.Context(), a.ClientID); err == nil {
				v.Client = c.Name
			}
			v.StepUp = demanded(a)
		}
		p.loginPage(w, r, v, http.StatusOK)
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			v.Error = "err_request"
			p.render(w, "message", http.StatusBadRequest, v)
			return
		}
		v.ID, v.Next = r.PostForm.Get("id"), r.PostForm.Get("next")
		if err := p.checkForm(r, "login", v.ID); err != nil {
			p.refuseForm(w, r, v, err)
			return
		}
		if r.PostForm.Get("action") == "unmet" { // the citizen cannot reach the level asked for
			a, err := p.liveRequest(r.Context(), v.ID)
			if err != nil {
				p.redirectTo(w, r, "", err)
				return
			}
			// OpenID Connect Core Error Code unmet_authentication_requirements 1.0 §1
			p.authError(w, r, a, "unmet_authentication_requirements")
			return
		}
		ctx := withSource(r.Context(), ratelimit.ClientAddr(r, p.lim.trusted))
		acct, err := p.PasswordLogin(ctx, r.PostForm.Get("username"), r.PostForm.Get("password"))
		if err != nil {
			if !errors.Is(err, ErrLogin) {
				p.log.Error("password login failed", "err", err)
			}
			v.Error = "err_login"
			p.loginPage(w, r, v, http.StatusUnauthorized)
			return
		}
		next, err := p.loggedIn(w, r, acct, []string{amrPassword}, v.ID, v.Next)
		p.redirectTo(w, r, next, err)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// continueSession continues an authorization request with the browser's session when it is
// good enough for the level asked for, or says so when no login on this provider can make it
// so (a real-name level for an account that has not been verified at a kiosk). It reports
// whether it answered; if not, the login page asks for a stronger credential.
func (p *Provider) continueSession(w http.ResponseWriter, r *http.Request, a store.AuthRequest, s store.BrowserSession, v *view) bool {
	ctx := r.Context()
	acct, err := p.st.GetAccount(ctx, s.UserID)
	if err != nil {
		return false
	}
	level, _ := sessionACR(acct, s.AMR)
	need := demanded(a)
	if level >= need {
		next, err := p.authNext(ctx, r, a, s, acct)
		p.redirectTo(w, r, next, err)
		return true
	}
	if need == levelRealName && level >= levelPasskey {
		// Only a card tapped at a kiosk gets there: say how, and let the citizen go back.
		v.Title, v.Done, v.CSRF = "title_realname", "realname_needed", p.formToken(w, r, "login", a.ID)
		p.render(w, "unmet", http.StatusOK, v)
		return true
	}
	return false
}

// loginPage shows the ways to log in this provider offers (passkey, phone code, upstream
// identities, and a staff password), those that reach the level a request asks for.
func (p *Provider) loginPage(w http.ResponseWriter, r *http.Request, v *view, status int) {
	v.UserCode = nextUserCode(v.Next)
	v.CSRF = p.formToken(w, r, "login", v.ID)
	v.Passkeys = p.wa != nil
	v.Phone = p.cfg.SMS != nil && v.StepUp <= levelLow
	v.Password = v.StepUp <= levelLow
	if v.StepUp <= levelLow {
		v.Upstreams = p.upstreamButtons(v)
	}
	p.render(w, "login", status, v)
}

func (p *Provider) serveConsent(w http.ResponseWriter, r *http.Request) {
	v := p.view(r, "title_consent")
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if (r.Method != http.MethodPost && r.Method != http.MethodGet) || r.ParseForm() != nil {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s, ok := p.browserSession(r)
	id := r.Form.Get("id")
	if r.Method == http.MethodGet {
		a, err := p.liveRequest(r.Context(), id)
		c, cerr := p.client(r.Context(), a.ClientID)
		if !ok || err != nil || cerr != nil || a.UserID != s.UserID {
			v.Error = "err_request"
			p.render(w, "message", http.StatusBadRequest, v)
			return
		}
		v.ID, v.Client, v.Scopes, v.CSRF = a.ID, c.Name, a.Scopes, p.formToken(w, r, "consent", sessionKey(s), a.ID)
		for _, res := range a.Resources { // what the token will open, besides the scopes
			switch res {
			case p.FleetAPI():
				v.Scopes = append(slices.Clip(v.Scopes), "fleet_api")
			case p.CitizenAPI():
				v.Scopes = append(slices.Clip(v.Scopes), "citizen_api")
			}
		}
		p.render(w, "consent", http.StatusOK, v)
		return
	}
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
	// Kept, so that the client does not ask again for what it was given; the citizen withdraws
	// it on her account page.
	if err := p.st.PutConsent(r.Context(), store.Consent{AccountID: a.UserID, ClientID: a.ClientID, Scopes: a.Scopes,
		GrantedAt: p.now()}); err != nil {
		p.log.Warn("consent not kept", "client", a.ClientID, "err", err)
	}
	http.Redirect(w, r, op.AuthCallbackURL(p.op)(p.issuerCtx(r.Context()), a.ID), http.StatusSeeOther)
}

// authError ends an authorization request with an error sent to the client's (registered,
// already validated) redirect URI.
func (p *Provider) authError(w http.ResponseWriter, r *http.Request, a store.AuthRequest, code string) {
	http.Redirect(w, r, p.authErrorURL(r.Context(), a, code), http.StatusSeeOther)
}

// authErrorURL ends an authorization request and returns the client's redirect URI with the
// error (RFC 6749 §4.1.2.1).
func (p *Provider) authErrorURL(ctx context.Context, a store.AuthRequest, code string) string {
	q := url.Values{"error": {code}}
	if a.State != "" {
		q.Set("state", a.State)
	}
	p.st.DeleteAuthRequest(ctx, a.ID)
	return a.RedirectURI + sep(a.RedirectURI) + q.Encode()
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
		p.loginPage(w, r, lv, http.StatusOK)
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
		action := r.PostForm.Get("action")
		if action == "approve" || action == "bind" {
			d.State, v.Done = store.DeviceAuthApproved, "done_approved"+kiosk
			d.UserID, d.Subject, d.AMR, d.AuthTime = s.UserID, p.sec.subject(c, s.UserID), s.AMR, s.AuthTime
		}
		if action == "bind" {
			acct, err := p.st.GetAccount(r.Context(), s.UserID)
			if err != nil || d.KioskID == "" || !canBind(acct, s) {
				v.Done, v.Error, v.Title = "", "err_bind", "title_device_code"
				p.render(w, "message", http.StatusBadRequest, v)
				return
			}
			v.Done = "done_bind"
		}
		if err := p.st.DecideDeviceAuth(r.Context(), code, d, p.now()); err != nil {
			v.Done, v.Error, v.Title = "", "err_code", "title_device_code"
			p.render(w, "device", http.StatusBadRequest, v)
			return
		}
		if action == "bind" { // once approved: the kiosk's card login with this code binds the card
			if err := p.approveBinding(r.Context(), d, s.UserID); err != nil {
				p.log.Error("card binding not recorded", "err", err)
				v.Done, v.Error = "", "err_server"
				p.render(w, "message", http.StatusInternalServerError, v)
				return
			}
		}
		p.render(w, "message", http.StatusOK, v)
		return
	}
	v.UserCode, v.Client, v.CSRF = code, c.Name, p.formToken(w, r, "device", sk, code)
	if d.KioskID != "" {
		v.Kiosk = d.KioskID
		if acct, err := p.st.GetAccount(r.Context(), s.UserID); err == nil {
			v.Bind = canBind(acct, s)
		}
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
