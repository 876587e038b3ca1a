package web_test

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/console/web"
	"github.com/kioskfleet/kioskfleet/console/web/webtest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// console serves the console in front of a fake hub holding webtest's fleet.
type console struct {
	t   *testing.T
	hub *webtest.Hub
	url string
	c   *http.Client
}

func newConsole(t *testing.T) *console {
	t.Helper()
	hub := webtest.NewHub(t)
	return newConsoleFor(t, hub, hub.Client())
}

func newConsoleFor(t *testing.T, hub *webtest.Hub, client web.Hub) *console {
	t.Helper()
	srv, err := web.New(web.Config{Hub: client, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &console{t: t, hub: hub, url: ts.URL, c: browserClient(t)}
}

// browserClient keeps cookies and does not follow redirects.
func browserClient(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// do sends a request and returns the status and body.
func (c *console) do(req *http.Request) (int, string, http.Header) {
	c.t.Helper()
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (c *console) get(path string, header ...string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.url+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	status, body, _ := c.do(req)
	return status, body
}

func (c *console) post(path string, form url.Values) (int, string, http.Header) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf loads a device page and returns the token its forms carry (the cookie is in the jar).
func (c *console) csrf(id string) string {
	c.t.Helper()
	status, body := c.get("/devices/" + id)
	m := csrfField.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		c.t.Fatalf("device page: status %d, no csrf field", status)
	}
	return m[1]
}

func (c *console) hubPosts() []string {
	var out []string
	for _, r := range c.hub.Requests() {
		if !strings.HasPrefix(r, "GET ") {
			out = append(out, r)
		}
	}
	return out
}

// inOrder checks that each string occurs in s after the one before.
func inOrder(t *testing.T, s string, parts ...string) {
	t.Helper()
	at := 0
	for _, p := range parts {
		i := strings.Index(s[at:], p)
		if i < 0 {
			t.Fatalf("%q not found after offset %d (or not at all)", p, at)
		}
		at += i + len(p)
	}
}

func between(s, from, to string) string {
	_, after, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	before, _, _ := strings.Cut(after, to)
	return before
}

func TestOverviewProblemsFirst(t *testing.T) {
	c := newConsole(t)
	status, body := c.get("/")
	if status != http.StatusOK {
		t.Fatalf("status %d\n%s", status, body)
	}
	problems := between(body, `id="problems"`, "</div>\n\n<h2>")
	// Offline first, then faults (by site), then degraded; fine and revoked kiosks are not problems.
	inOrder(t, problems, webtest.Offline, "离线（2 小时前）",
		webtest.PaperOut, "凭条打印机 receipt0：缺纸",
		webtest.CardFault, "身份证阅读器 idcard0：安全模块（SAM）故障",
		webtest.DiskLow, "磁盘将满（剩余 4%）")
	for _, id := range []string{webtest.OK, webtest.Revoked, webtest.Odd} {
		if strings.Contains(problems, id) {
			t.Errorf("%s listed as a problem", id)
		}
	}
	// Counts per site and region: sz-nanshan-2 has one offline and one faulty kiosk.
	row := between(body, `href="/devices?site=sz-nanshan-2"`, "</tr>")
	if got := regexp.MustCompile(`<td[^>]*>(\d+)</td>`).FindAllStringSubmatch(row, -1); len(got) != 5 ||
		got[0][1] != "2" || got[1][1] != "1" || got[2][1] != "1" || got[3][1] != "1" || got[4][1] != "0" {
		t.Errorf("sz-nanshan-2 counts (total online offline fault degraded) = %v", got)
	}
	if !strings.Contains(body, `href="/devices?region=440305"`) {
		t.Error("no per-region counts")
	}
	if regexp.MustCompile(`(src|href)="(https?:)?//`).MatchString(body) {
		t.Error("page refers to an external asset")
	}
}

func TestDevicesFilters(t *testing.T) {
	c := newConsole(t)
	status, body := c.get("/devices?site=sz-futian-1&region=4403&status=online")
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	want := "GET /api/v1/devices?region=4403&site=sz-futian-1&status=online"
	if !contains(c.hub.Requests(), want) {
		t.Fatalf("hub requests %q lack %q", c.hub.Requests(), want)
	}
	inOrder(t, body, webtest.PaperOut, webtest.OK)
	if strings.Contains(body, webtest.CardFault) {
		t.Error("filter let another site's kiosk through")
	}

	// fault is the console's own filter: the hub is asked without status.
	_, body = c.get("/devices?status=fault")
	if !contains(c.hub.Requests(), "GET /api/v1/devices") {
		t.Errorf("hub requests %q", c.hub.Requests())
	}
	list := between(body, `id="live"`, "</main>")
	for id, want := range map[string]bool{webtest.PaperOut: true, webtest.CardFault: true, webtest.OK: false, webtest.Offline: false, webtest.DiskLow: false} {
		if strings.Contains(list, id) != want {
			t.Errorf("status=fault: %s listed = %v", id, !want)
		}
	}
}

func TestHubErrorShown(t *testing.T) {
	c := newConsole(t)
	status, body := c.get("/devices?region=44x&status=sideways")
	if status != http.StatusBadRequest {
		t.Errorf("status %d, want the hub's 400", status)
	}
	for _, s := range []string{"中台返回错误 (bad_request)", `region: want 1 to 6 digits of a GB/T 2260 code, got &#34;44x&#34;`, "status: want online or offline"} {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q", s)
		}
	}

	status, body = c.get("/devices/" + webtest.Unknown)
	if status != http.StatusNotFound || !strings.Contains(body, `no device &#34;k-unknown-0099&#34;`) {
		t.Errorf("unknown device: status %d", status)
	}

	// A hub that cannot be reached: 502 with the reason.
	down := newConsoleFor(t, c.hub, &api.Client{BaseURL: "http://127.0.0.1:1", Token: webtest.Token})
	status, body = down.get("/")
	if status != http.StatusBadGateway || !strings.Contains(body, "无法连接中台") {
		t.Errorf("hub down: status %d", status)
	}
	// A wrong token: the hub's 401 is shown as such.
	bad := newConsoleFor(t, c.hub, &api.Client{BaseURL: c.hub.URL, Token: "wrong"})
	status, body = bad.get("/?lang=en")
	if status != http.StatusUnauthorized || !strings.Contains(body, "The hub refused (unauthorized)") {
		t.Errorf("bad token: status %d", status)
	}
}

func TestDevicePage(t *testing.T) {
	c := newConsole(t)
	status, body := c.get("/devices/" + webtest.PaperOut)
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	for _, s := range []string{
		"凭条打印机 receipt0：缺纸", // the fault in words, at the top
		"纸张 用尽",             // consumable
		"墨粉 不足",             // a consumable running low on a healthy printer
		"Hengtai KP-80S",
		"print-test-page: printer not ready: paper-out", // a failed command's error
		`<span class="chip cmd-failed">失败</span>`,
		"1.7 GiB / 3.7 GiB (45%)", // memory
		"3 小时前",                   // presence changed
	} {
		if !strings.Contains(body, s) {
			t.Errorf("device page lacks %q", s)
		}
	}

	_, body = c.get("/devices/" + webtest.DiskLow + "?lang=en")
	for _, s := range []string{"Drift: the kiosk does not run the desired configuration", "Desired · version 4", "Reported · version 3",
		"settings: logLevel &#34;verbose&#34;", "disk nearly full (4% free)"} {
		if !strings.Contains(body, s) {
			t.Errorf("drifting device page lacks %q", s)
		}
	}

	// Shapes the agent does not send are not guessed at: the page says why it cannot read them.
	status, body = c.get("/devices/" + webtest.Odd + "?lang=en")
	if status != http.StatusOK {
		t.Fatalf("odd device: status %d", status)
	}
	for _, s := range []string{"unreadable: <code>wire: malformed payload: json: unknown field &#34;scanner&#34;",
		"unreadable: <code>wire: malformed payload: json: cannot unmarshal string into Go struct field Heartbeat.cpuPercent"} {
		if !strings.Contains(body, s) {
			t.Errorf("odd device page lacks %q", s)
		}
	}
}

// The device page shows the presence history with why each session ended, in both languages.
func TestDevicePresenceHistory(t *testing.T) {
	c := newConsole(t)
	_, body := c.get("/devices/" + webtest.Offline)
	inOrder(t, body, "连接记录", "心跳超时（断电或断网）", "20h0m0s", "hub-1", "正常断开", "72h0m0s")
	_, body = c.get("/devices/" + webtest.Offline + "?lang=en")
	inOrder(t, body, "Presence history", "i/o timeout", "Keep-alive timeout (power or network lost)", "Clean disconnect")
	_, body = c.get("/devices/" + webtest.OK + "?lang=en")
	if !strings.Contains(body, "No ended session yet.") {
		t.Error("a kiosk without ended sessions: no empty-history note")
	}
}

func TestIDNumbersMasked(t *testing.T) {
	c := newConsole(t)
	for _, path := range []string{"/devices/" + webtest.CardFault, "/devices/" + webtest.CardFault + "?live=1"} {
		status, body := c.get(path)
		if status != http.StatusOK {
			t.Fatalf("%s: status %d", path, status)
		}
		if strings.Contains(body, webtest.LeakedIDNumber) || strings.Contains(body, webtest.LeakedIDNumber[6:]) {
			t.Errorf("%s shows an ID number", path)
		}
		if !strings.Contains(body, "110105************") {
			t.Errorf("%s: masked number not shown", path)
		}
	}
}

func TestCommandForm(t *testing.T) {
	c := newConsole(t)
	tok := c.csrf(webtest.PaperOut)
	form := url.Values{"csrf": {tok}, "name": {"print-test-page"}, "args": {`{"printer": "receipt0"}`}, "ttl": {"15m"}}
	status, _, h := c.post("/devices/"+webtest.PaperOut+"/commands", form)
	if status != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/devices/"+webtest.PaperOut+"?sent=") {
		t.Fatalf("status %d, location %q", status, h.Get("Location"))
	}
	cmds := c.hub.Commands(webtest.PaperOut)
	if cmds[0].Name != "print-test-page" || string(cmds[0].Args) != `{"printer":"receipt0"}` || cmds[0].ExpiresAt.Sub(cmds[0].CreatedAt) != 15*time.Minute {
		t.Fatalf("hub got %+v", cmds[0])
	}
	_, body := c.get(h.Get("Location"))
	if !strings.Contains(body, "命令已提交: print-test-page ("+cmds[0].ID+")") {
		t.Error("no confirmation after sending")
	}

	// A quick button sends its name alone.
	status, _, _ = c.post("/devices/"+webtest.PaperOut+"/commands", url.Values{"csrf": {tok}, "name": {"diagnostics"}})
	if cmds := c.hub.Commands(webtest.PaperOut); status != http.StatusSeeOther || cmds[0].Name != "diagnostics" || cmds[0].Args != nil {
		t.Fatalf("quick command: status %d, hub got %+v", status, cmds[0])
	}

	posts := len(c.hubPosts())
	for name, f := range map[string]url.Values{
		"no token":    {"name": {"ping"}},
		"wrong token": {"csrf": {strings.Repeat("A", 43)}, "name": {"ping"}},
	} {
		status, body, _ := c.post("/devices/"+webtest.PaperOut+"/commands", f)
		if status != http.StatusForbidden || !strings.Contains(body, "表单已过期或来源不明") {
			t.Errorf("%s: status %d", name, status)
		}
	}
	// Another site's page posting with a stolen token still fails on Origin.
	req, _ := http.NewRequest(http.MethodPost, c.url+"/devices/"+webtest.PaperOut+"/revoke", strings.NewReader(url.Values{"csrf": {tok}, "confirm": {"yes"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if status, _, _ := c.do(req); status != http.StatusForbidden {
		t.Errorf("cross-origin post: status %d", status)
	}
	// A client without the cookie (a forged form elsewhere) is refused even with a token, and
	// told why.
	fresh := &console{t: t, hub: c.hub, url: c.url, c: browserClient(t)}
	status, body, _ = fresh.post("/devices/"+webtest.PaperOut+"/commands?lang=en", url.Values{"csrf": {tok}, "name": {"ping"}})
	if status != http.StatusForbidden || !strings.Contains(body, "did not send the console") {
		t.Errorf("no cookie: status %d\n%s", status, body)
	}
	// Another browser, with a cookie and token of its own, cannot use this browser's token.
	if other := fresh.csrf(webtest.PaperOut); other == tok {
		t.Fatal("two browsers got the same token")
	}
	status, body, _ = fresh.post("/devices/"+webtest.PaperOut+"/commands?lang=en", url.Values{"csrf": {tok}, "name": {"ping"}})
	if status != http.StatusForbidden || !strings.Contains(body, "The form expired or came from elsewhere") {
		t.Errorf("another browser's token: status %d\n%s", status, body)
	}
	if got := c.hubPosts(); len(got) != posts {
		t.Errorf("refused forms reached the hub: %q", got[posts:])
	}
}

// Behind https (SecureCookies) the token's cookie is a __Host- cookie, which another host cannot
// plant: a cookie without the prefix does not count.
func TestCSRFCookieSecure(t *testing.T) {
	hub := webtest.NewHub(t)
	srv, err := web.New(web.Config{Hub: hub.Client(), SecureCookies: true})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/devices/"+webtest.PaperOut, nil))
	var tok *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == "__Host-kf_csrf" {
			tok = c
		}
	}
	if tok == nil || !tok.Secure || !tok.HttpOnly || tok.Path != "/" || tok.Domain != "" || tok.SameSite != http.SameSiteStrictMode {
		t.Fatalf("csrf cookie %+v", rec.Result().Cookies())
	}
	post := func(cookie string) int {
		req := httptest.NewRequest(http.MethodPost, "/devices/"+webtest.PaperOut+"/commands",
			strings.NewReader(url.Values{"csrf": {tok.Value}, "name": {"ping"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Cookie", cookie+"="+tok.Value)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := post("kf_csrf"); code != http.StatusForbidden {
		t.Errorf("with a planted kf_csrf cookie: %d, want 403", code)
	}
	if code := post("__Host-kf_csrf"); code != http.StatusSeeOther {
		t.Errorf("with the __Host- cookie: %d, want 303", code)
	}
}

func TestCommandFormErrors(t *testing.T) {
	c := newConsole(t)
	tok := c.csrf(webtest.PaperOut)
	posts := len(c.hubPosts())

	// Checked here: every problem at once, the form keeps what was typed, the hub is not asked.
	status, body, _ := c.post("/devices/"+webtest.PaperOut+"/commands", url.Values{"csrf": {tok}, "name": {""}, "args": {`{"printer":`}})
	if status != http.StatusBadRequest || !strings.Contains(body, "name：必填") || !strings.Contains(body, "args：不是有效的 JSON") ||
		!strings.Contains(body, `{&#34;printer&#34;:</textarea>`) {
		t.Errorf("local check: status %d", status)
	}
	if got := c.hubPosts(); len(got) != posts {
		t.Errorf("invalid form reached the hub: %q", got[posts:])
	}

	// The page shown for a refused form refreshes itself from the device page, not the form's URL.
	if !strings.Contains(body, `data-live="/devices/`+webtest.PaperOut+`?live=1"`) || !strings.Contains(body, `href="/devices/`+webtest.PaperOut+`?lang=en"`) {
		t.Error("refused form page: live or language link not the device page")
	}

	// Only the commands the kiosk runs, with the arguments they need.
	_, body, _ = c.post("/devices/"+webtest.PaperOut+"/commands?lang=en", url.Values{"csrf": {tok}, "name": {"Ping"}})
	_, body2, _ := c.post("/devices/"+webtest.PaperOut+"/commands?lang=en", url.Values{"csrf": {tok}, "name": {"journal"}})
	if !strings.Contains(body, `name: the kiosk has no command &#34;Ping&#34; (it runs ping, diagnostics,`) ||
		!strings.Contains(body2, "args: journal needs a JSON object, the entry") {
		t.Error("unknown command or missing args not explained")
	}
	if got := c.hubPosts(); len(got) != posts {
		t.Errorf("invalid form reached the hub: %q", got[posts:])
	}

	// Checked by the hub: its message and fields are on the page.
	status, body, _ = c.post("/devices/"+webtest.PaperOut+"/commands?lang=en", url.Values{"csrf": {tok}, "name": {"ping"}, "ttl": {"2y"}})
	if status != http.StatusBadRequest {
		t.Errorf("hub check: status %d", status)
	}
	for _, s := range []string{"The hub refused (bad_request)", `ttl: want a duration between 1s and 168h0m0s, got &#34;2y&#34;`,
		`value="ping"`, `value="2y"`} {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	// A revoked kiosk takes no commands.
	tok = c.csrf(webtest.Revoked)
	_, body, _ = c.post("/devices/"+webtest.Revoked+"/commands", url.Values{"csrf": {tok}, "name": {"ping"}})
	if !strings.Contains(body, "device: k-revoked-0006 is revoked") {
		t.Error("revoked device: hub's refusal not shown")
	}
}

func TestDesiredAndRevoke(t *testing.T) {
	c := newConsole(t)
	tok := c.csrf(webtest.DiskLow)
	for doc, want := range map[string]string{`[1]`: "doc：必须是 JSON 对象", `{"a":`: "doc：不是有效的 JSON"} {
		status, body, _ := c.post("/devices/"+webtest.DiskLow+"/desired", url.Values{"csrf": {tok}, "doc": {doc}})
		if status != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("doc %s: status %d, want %q", doc, status, want)
		}
	}
	status, _, h := c.post("/devices/"+webtest.DiskLow+"/desired", url.Values{"csrf": {tok}, "doc": {`{"logLevel": "info"}`}})
	if status != http.StatusSeeOther || h.Get("Location") != "/devices/"+webtest.DiskLow+"?desired=5#state" {
		t.Fatalf("status %d, location %q", status, h.Get("Location"))
	}
	if d := c.hub.Desired(webtest.DiskLow); d.Version != 5 || string(d.Doc) != `{"logLevel":"info"}` {
		t.Errorf("hub desired %+v", d)
	}

	status, body, _ := c.post("/devices/"+webtest.DiskLow+"/revoke", url.Values{"csrf": {tok}})
	if status != http.StatusBadRequest || !strings.Contains(body, "请勾选确认框后再吊销") {
		t.Errorf("revoke unconfirmed: status %d", status)
	}
	status, _, _ = c.post("/devices/"+webtest.DiskLow+"/revoke", url.Values{"csrf": {tok}, "confirm": {"yes"}})
	if status != http.StatusSeeOther {
		t.Fatalf("revoke: status %d", status)
	}
	_, body = c.get("/devices/" + webtest.DiskLow)
	if !strings.Contains(body, "终端已吊销") && !strings.Contains(body, "已吊销") {
		t.Error("device page does not show the kiosk revoked")
	}
}

func TestLanguage(t *testing.T) {
	for _, tc := range []struct{ accept, query, want string }{
		{"", "", "需要处理的终端"},
		{"en-US,en;q=0.9", "", "Kiosks needing attention"},
		{"fr-FR, en;q=0.5, zh;q=0.4", "", "Kiosks needing attention"},
		{"en;q=0.2, zh-CN", "", "需要处理的终端"},
		{"en", "?lang=zh-CN", "需要处理的终端"},
		{"", "?lang=en", "Kiosks needing attention"},
		{"", "?lang=xx", "需要处理的终端"},
	} {
		c := newConsole(t)
		_, body := c.get("/"+tc.query, "Accept-Language", tc.accept)
		if !strings.Contains(body, tc.want) {
			t.Errorf("Accept-Language %q, query %q: page lacks %q", tc.accept, tc.query, tc.want)
		}
	}
	// The choice made with ?lang= is kept for the next pages.
	c := newConsole(t)
	c.get("/?lang=en")
	_, body := c.get("/devices/" + webtest.PaperOut)
	if !strings.Contains(body, "Receipt printer receipt0: paper out") || !strings.Contains(body, `<html lang="en">`) {
		t.Error("language not kept after ?lang=en")
	}
	if !strings.Contains(body, `href="/devices/k-paper-0002?lang=zh-CN"`) {
		t.Error("no link to the page in Chinese")
	}
}

func TestLiveJSON(t *testing.T) {
	c := newConsole(t)
	for _, path := range []string{"/?live=1", "/devices?status=problem&live=1", "/devices/" + webtest.PaperOut + "?live=1"} {
		status, body := c.get(path)
		var v struct {
			HTML string `json:"html"`
		}
		if status != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil || !strings.Contains(v.HTML, webtest.PaperOut) {
			t.Errorf("%s: status %d, body %.200s", path, status, body)
		}
		if strings.Contains(v.HTML, "<form") || strings.Contains(v.HTML, "<html") {
			t.Errorf("%s: live part holds a form or the whole page", path)
		}
	}
}

func TestHeadersAndStatic(t *testing.T) {
	c := newConsole(t)
	req, _ := http.NewRequest(http.MethodGet, c.url+"/", nil)
	_, _, h := c.do(req)
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	for _, p := range []string{"/static/app.css", "/static/app.js"} {
		if status, body := c.get(p); status != http.StatusOK || len(body) < 100 {
			t.Errorf("%s: status %d", p, status)
		}
	}
	// Pages are gzipped for clients that take it.
	req, _ = http.NewRequest(http.MethodGet, c.url+"/?live=1", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	_, body, h := c.do(req)
	if h.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", h.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(zr); !strings.Contains(string(b), webtest.PaperOut) {
		t.Error("gzipped live part lacks the faulty kiosk")
	}
	if status, _ := c.get("/nope"); status != http.StatusNotFound {
		t.Errorf("/nope: status %d", status)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestAppsPages: the apps page lists every app with its state on each channel; an app's page
// shows its versions, newest first, and its audit trail with who, from, to and why.
func TestAppsPages(t *testing.T) {
	c := newConsole(t)
	status, body := c.get("/apps?lang=en")
	if status != http.StatusOK {
		t.Fatalf("apps page: %d", status)
	}
	inOrder(t, body, `aria-current="page">Apps`, "完税证明打印", "tax-print", "Kiosk bundle", "listed", "1.4.0", "社保查询", "Web link", "published", "2.0.0")
	_, body = c.get("/apps/tax-print?lang=zh-CN")
	inOrder(t, body, "完税证明打印", "自助终端应用", "1.5.0", "待审核", "1.4.0", "已上架", "1.3.0", "已下架",
		"审计记录", "自助终端", "已上架 → 已下架", "u_op", "superseded by 1.4.0", "创建 → 草稿", "u_dev")
	if status, _ := c.get("/apps/nope"); status != http.StatusNotFound {
		t.Errorf("unknown app: %d", status)
	}
	status, body = c.get("/apps?live=1")
	if status != http.StatusOK || !strings.Contains(body, "tax-print") || strings.Contains(body, "<form") {
		t.Errorf("live part: %d %.200s", status, body)
	}
}

// TestRolloutsPage: each rollout with its state and progress per wave.
func TestRolloutsPage(t *testing.T) {
	c := newConsole(t)
	status, body := c.get("/rollouts?lang=en")
	if status != http.StatusOK {
		t.Fatalf("rollouts page: %d", status)
	}
	inOrder(t, body, `aria-current="page">Rollouts`, "running", "tax-print 1.5.0", "ro-1", "Wave 2/2", "1 (10%)", "2", "2 (100%)", "18",
		`value="50"`, "9", "1", "8", "3", "Total", "20")
}
