package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/agent/shell"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
	"github.com/kioskfleet/kioskfleet/drivers/ipp"
	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// hubCall sends a JSON request to the hub (path from the root) with the Authorization value
// auth, decodes a 2xx answer into out and returns the status.
func hubCall(t *testing.T, h *hub, method, path, auth string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.client.BaseURL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := h.client.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %.300s", method, path, err, b)
		}
	} else if res.StatusCode/100 != 2 {
		t.Logf("%s %s: %d %.300s", method, path, res.StatusCode, b)
	}
	return res.StatusCode
}

// channelToken runs the code flow (PKCE) of a citizen's channel client in her phone's browser,
// where she is logged in, for the citizens' API, and returns the access token. secret is empty
// for a public client (the mobile app).
func channelToken(t *testing.T, h *hub, phone *identitytest.Browser, client, secret, redirect string) string {
	t.Helper()
	v := oauth2.GenerateVerifier()
	q := url.Values{"client_id": {client}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid"},
		"state": {"s"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(v)}, "code_challenge_method": {"S256"},
		identity.ParamResource: {api.CitizenResource(h.client.BaseURL)}}
	p, err := phone.Get(h.client.BaseURL + "/oidc/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	back := p.URL // a redirect URI on the hub's host was followed (the portal's)
	if p.Loc != "" {
		back, _ = url.Parse(p.Loc)
	}
	code := back.Query().Get("code")
	if code == "" {
		t.Fatalf("%s: no code (%d %s %.300s)", client, p.Status, back, p.Body)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {v}}
	if secret == "" {
		form.Set("client_id", client)
	}
	req, _ := http.NewRequest("POST", h.client.BaseURL+"/oidc/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(client, secret)
	}
	res, err := h.client.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || res.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("%s token: %d %v", client, res.StatusCode, err)
	}
	return tok.AccessToken
}

// TestKioskShellLiveData runs the shell's case and recommendation pages in Chromium against a
// real hub and a real enrolled agent with devsim.
//
// A citizen logged in on her phone (phone code) logs in at the kiosk by its QR code; she follows
// her case on the web and in the mobile app (the hub's case stream, with those channels' own
// tokens) and on the kiosk's case screen. A department (a registered client, HTTP Basic) moves
// the case through the department API: each update shows on the shell's page without a reload,
// and the same update reaches her web and mobile subscribers. The department attaches the
// certificate; the shell offers it among the materials and prints it through the local device
// API on ippeveprinter, which receives the very bytes the department sent.
//
// Then the canary card is tapped: logged in, no recommendation (she is 36). A card whose holder
// turns 60 in ten days is tapped: the senior services are recommended on the home screen; she
// opts out there, and at her next tap gets none. The card numbers appear in no page, and in no
// file or log of the agent or the hub.
func TestKioskShellLiveData(t *testing.T) {
	sms := filepath.Join(t.TempDir(), "sms.txt")
	k := startKioskShell(t, "--sms-dev-file", sms)
	h := k.h
	// Long enough for the whole test: walking away is TestKioskShell's.
	if _, err := h.client.SetDesired(context.Background(), k.id, json.RawMessage(`{"idleTimeout":"10m"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the long idle timeout applied", func() bool { return k.state().IdleMs == 600000 })

	// The department's system: a confidential client registered by an admin.
	staff, err := os.ReadFile(fleetctlLogin(t, h, "admin", adminPassword(t, h)))
	if err != nil {
		t.Fatal(err)
	}
	var reg api.ClientRegistration
	if st := hubCall(t, h, "POST", "/oidc/admin/clients", "Bearer "+strings.TrimSpace(string(staff)), api.ClientRegistration{
		ID: "dept-hukou", Name: "公安局户籍系统", RedirectURIs: []string{"http://127.0.0.1:1/cb"},
		GrantTypes: []string{"authorization_code"}, Confidential: true}, &reg); st != http.StatusCreated || reg.Secret == "" {
		t.Fatalf("department client: %d %+v", st, reg)
	}
	dreq, _ := http.NewRequest("GET", "/", nil)
	dreq.SetBasicAuth(reg.ID, reg.Secret)
	dept := dreq.Header.Get("Authorization")

	// Her QR login at the kiosk, approved on her phone after a phone-code login.
	if err := chromedp.Do(k.ctx, chromedp.Navigate("http://"+k.addr+"/")); err != nil {
		t.Fatal(err)
	}
	k.until("the attract screen", `document.querySelector('#screen').dataset.view === 'attract' && !document.querySelector('#login-qr').disabled`)
	k.click("#login-qr")
	k.until("the QR code", `document.querySelector('#qr-code') !== null && text('#qr-user-code').length === 9`)
	code, uri := k.eval(`document.querySelector('#qr-user-code').textContent`), k.eval(`document.querySelector('#qr-uri').textContent`)
	phone := identitytest.NewBrowserFor(h.client.BaseURL)
	phone.C.Transport = h.client.HTTP.Transport
	login, err := phone.Get(uri + "?user_code=" + url.QueryEscape(code))
	if err != nil || !strings.Contains(login.Body, `name="phone"`) {
		t.Fatalf("the QR's page offers no phone login: %v %.300s", err, login.Body)
	}
	p, err := phone.PhoneLogin(login, "138 0013 8123", sms)
	if err != nil || !strings.Contains(p.Body, `value="approve"`) {
		t.Fatalf("no approval page after the phone login: %v %+v", err, p)
	}
	if p, err = phone.Submit(p, url.Values{"action": {"approve"}}); err != nil || p.Status != 200 {
		t.Fatalf("approval: %v %+v", err, p)
	}
	k.until("her home screen after the QR login", `document.querySelector('#screen').dataset.view === 'home'`)
	if st := k.state(); st.Session == nil || st.Session.ACR != shell.ACRDevice {
		t.Fatalf("session after the QR login: %+v", st.Session)
	}
	// Her web portal and mobile app sessions (the same account, the browser session of her phone).
	web := channelToken(t, h, phone, identity.ClientWebPortal, credential(t, h, `client secret web-portal`), h.client.BaseURL+"/portal/callback")
	mobile := channelToken(t, h, phone, identity.ClientMobileApp, "", "cn.gov.kioskfleet.app:/oauth2redirect")

	// The department files her case (she applied on the web).
	var c api.Case
	if st := hubCall(t, h, "POST", api.Prefix+"/cases", dept, api.CreateCase{Ref: "GA-2026-0001", Service: "hukou.transfer",
		Department: "公安局", Title: "户口迁移", CitizenToken: web}, &c); st != http.StatusCreated {
		t.Fatalf("create case: %d", st)
	}
	var after int64
	for _, ev := range c.Timeline {
		after = max(after, ev.Seq)
	}
	k.click("#svc-cases")
	k.until("her case on the kiosk", `text('#screen').includes('户口迁移') && text('#screen').includes('✓ 已提交') && !text('#screen').includes('✓ 已受理')`)

	// Her web and mobile subscribers: the hub's case stream with each channel's token.
	subs := &shell.HubClient{API: &api.Client{BaseURL: h.client.BaseURL, HTTP: h.client.HTTP}}
	seen := map[string]chan api.CaseEvent{"web": make(chan api.CaseEvent, 16), "mobile": make(chan api.CaseEvent, 16)}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	var watchers sync.WaitGroup
	defer func() { stopWatch(); watchers.Wait() }()
	for ch, tok := range map[string]string{"web": web, "mobile": mobile} {
		watchers.Go(func() {
			_ = subs.WatchCases(watchCtx, tok, after, func(ev api.CaseEvent) error {
				select {
				case seen[ch] <- ev:
					return nil
				case <-watchCtx.Done():
					return watchCtx.Err()
				}
			})
		})
	}
	// update moves the case and waits for the update on the shell's page, without a reload, and
	// at both subscribers.
	update := func(status, step string) {
		t.Helper()
		k.eval(`String(window.kfSamePage = '` + status + `')`)
		note := "note " + status
		if st := hubCall(t, h, "POST", api.Prefix+"/cases/"+c.ID+"/status", dept, api.SetCaseStatus{Status: status, Note: note}, nil); st != http.StatusOK {
			t.Fatalf("status %s: %d", status, st)
		}
		k.until("the kiosk page showing "+status+" live", `window.kfSamePage === '`+status+`' && document.querySelector('#screen').dataset.view === 'cases' && text('#screen').includes('✓ `+step+`')`)
		for ch, evs := range seen {
			for got := false; !got; {
				select {
				case ev := <-evs:
					got = ev.CaseID == c.ID && ev.Status == status && ev.Note == note
				case <-time.After(20 * time.Second):
					t.Fatalf("%s: the update to %s did not reach her", ch, status)
				}
			}
		}
	}
	update(api.CaseAccepted, "已受理")
	update(api.CaseInReview, "审核中")
	cert, err := ipp.TestPagePDF(ipp.TestPage{KioskID: k.id, Printer: "a4", Lines: []string{"Certificate of case " + c.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if st := hubCall(t, h, "POST", api.Prefix+"/cases/"+c.ID+"/documents", dept, api.AddCaseDocument{Kind: "certificate",
		Name: "certificate.pdf", ContentType: "application/pdf", Content: cert}, nil); st != http.StatusCreated {
		t.Fatalf("certificate: %d", st)
	}
	update(api.CaseApproved, "已批准")
	update(api.CaseCertificateReady, "证照可领取")
	k.shot("case-live-zh")

	// The certificate, printed through the local device API on the A4 printer (ippeveprinter).
	jobsBefore := len(jobFiles(t, filepath.Join(k.simDir, "ipp")))
	k.click("#back")
	k.until("home", `document.querySelector('#screen').dataset.view === 'home'`)
	k.click("#svc-print")
	k.until("the certificate among the materials", `document.querySelector('button[id^="print-cert-"]') !== null`)
	k.click(`button[id^="print-cert-"]`)
	k.until("the certificate printed", `text('#print-status').includes('打印完成') && document.querySelector('#progress').getAttribute('aria-valuenow') === '100'`)
	jobs := jobFiles(t, filepath.Join(k.simDir, "ipp"))
	if len(jobs) != jobsBefore+1 || !bytes.Equal(jobs[len(jobs)-1], cert) {
		t.Fatalf("%d jobs on the printer (%d before); the last is not the %d bytes of the certificate", len(jobs), jobsBefore, len(cert))
	}
	k.click("#logout")
	k.until("the attract screen after her logout", `location.pathname === '/shell/' && document.querySelector('#screen').dataset.view === 'attract'`)

	// The canary card: logged in, nothing recommended to her.
	pageHolds := func(where string, numbers ...string) {
		t.Helper()
		html := k.eval(`document.documentElement.outerHTML + document.body.innerText`)
		for _, n := range numbers {
			if strings.Contains(html, n) {
				t.Errorf("%s shows the ID number %s", where, idcard4(n))
			}
		}
	}
	k.click("#login-card")
	k.until("the canary card holder greeted, masked", `document.querySelector('#screen').dataset.view === 'home' && text('#greeting').includes('张*丰')`)
	if k.eval(`String(document.querySelector('#recommendations') === null)`) != "true" {
		t.Errorf("recommendations for a citizen of 36: %s", k.eval(`document.querySelector('#recommendations').textContent`))
	}
	pageHolds("the canary's home screen", idcardsim.CanaryResident)
	k.click("#logout")
	k.until("the attract screen", `location.pathname === '/shell/' && document.querySelector('#screen').dataset.view === 'attract'`)

	// A card whose holder turns 60 in ten days: the senior services, until she opts out.
	senior := idcardsim.SeniorNumber(time.Now())
	res, err := http.Post(k.control+"/devices/idcard0/card/senior", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("devsim card: %d", res.StatusCode)
	}
	k.click("#login-card")
	k.until("the senior services recommended", `document.querySelector('#screen').dataset.view === 'home' && text('#greeting').includes('李*英') &&
		text('#recommendations').includes('老年人优待证') && text('#recommendations').includes('高龄津贴')`)
	k.shot("recommendations-zh")
	pageHolds("the senior's home screen", senior)
	k.click("#rec-optout")
	k.until("no recommendation after her opt-out", `document.querySelector('#screen').dataset.view === 'home' && document.querySelector('#recommendations') === null`)
	k.click("#logout")
	k.until("the attract screen", `location.pathname === '/shell/' && document.querySelector('#screen').dataset.view === 'attract'`)
	k.click("#login-card")
	k.until("her home screen again", `document.querySelector('#screen').dataset.view === 'home' && text('#greeting').includes('李*英')`)
	if k.eval(`String(document.querySelector('#recommendations') === null)`) != "true" {
		t.Errorf("recommendations after the opt-out: %s", k.eval(`document.querySelector('#recommendations').textContent`))
	}
	k.click("#logout")
	k.until("the attract screen", `location.pathname === '/shell/' && document.querySelector('#screen').dataset.view === 'attract'`)
	pageHolds("the attract screen", idcardsim.CanaryResident, senior)

	// Neither number in any file or log of the agent or the hub (as text or as the card's UCS-2).
	k.noCardNumber(idcardsim.CanaryResident, senior)
}

// noCardNumber checks that no file or log of the agent or the hub holds one of the ID numbers,
// as text or as the card's UCS-2.
func (k *kioskShell) noCardNumber(numbers ...string) {
	t := k.t
	t.Helper()
	var needles [][]byte
	for _, n := range numbers {
		needles = append(needles, []byte(n), ucs2(n))
	}
	files := 0
	for _, root := range []string{k.dir, k.h.dir, filepath.Dir(k.agent.log), filepath.Dir(k.h.p.log)} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(p)
			files++
			for _, n := range needles {
				if bytes.Contains(b, n) {
					t.Errorf("%s holds a card's ID number", p)
				}
			}
			return nil
		})
	}
	if files < 6 {
		t.Fatalf("searched only %d files", files)
	}
	t.Logf("searched %d files of the agent and the hub: no card number", files)
}

// ucs2 is s as UCS-2 little-endian, the card's own text encoding.
func ucs2(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 0, 2*len(u))
	for _, r := range u {
		b = append(b, byte(r), byte(r>>8))
	}
	return b
}

// idcard4 names an ID number in a message by its last four characters only.
func idcard4(n string) string { return fmt.Sprintf("ending %s", n[len(n)-4:]) }
