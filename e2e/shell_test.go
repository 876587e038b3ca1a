package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kioskfleet/kioskfleet/agent/shell"
	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

const chromium = "/usr/bin/chromium"

// kioskShell is a real hub, a devsim kiosk (ID-card reader with the canary card, ippeveprinter,
// the SANE test scanner) and a kiosk-agent serving the shell, with headless Chromium on it.
type kioskShell struct {
	t       *testing.T
	h       *hub
	id      string // device ID
	dir     string // the agent's data
	simDir  string
	addr    string // the shell's listener
	agent   *proc
	ctx     context.Context
	shots   string
	control string // devsim's control API
}

func startKioskShell(t *testing.T, hubArgs ...string) *kioskShell {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("kiosk shell test skipped: %s not found (Debian package chromium)", chromium)
	}
	k := startKioskAgent(t, hubArgs...)
	k.shots = os.Getenv("KF_SHELL_SCREENSHOTS")
	if k.shots == "" {
		k.shots = t.TempDir()
	}
	k.ctx = browser(t)
	return k
}

// startKioskAgent starts the hub (with hubArgs), devsim and the agent serving the shell, without
// a browser.
func startKioskAgent(t *testing.T, hubArgs ...string) *kioskShell {
	t.Helper()
	return startKioskAgentOn(t, newHub(t, hubArgs...))
}

// startKioskAgentOn starts devsim and the agent serving the shell, enrolled with the hub h.
func startKioskAgentOn(t *testing.T, h *hub) *kioskShell {
	t.Helper()
	k := &kioskShell{t: t, h: h, simDir: t.TempDir()}
	k.h.site("hall-1")
	k.dir, k.id = k.h.enroll("hall-1")
	start(t, "devsim", "devsim", "kiosk", "--dir", k.simDir)
	cfg := filepath.Join(k.simDir, "devices.yaml")
	// devsim writes control.url after devices.yaml: waiting for it waits for both.
	waitFor(t, 60*time.Second, "devsim ready", func() bool { _, err := os.Stat(filepath.Join(k.simDir, "control.url")); return err == nil })
	b, _ := os.ReadFile(filepath.Join(k.simDir, "control.url"))
	k.control = strings.TrimSpace(string(b))
	k.agent = startAgent(t, "agent", k.dir, "--devices", cfg, "--profiles", "../firmware-profiles", "--local-api", "127.0.0.1:0")
	k.addr = localAPIAddr(t, k.agent)
	// Walking away is short here: the idle timeout through the hub's desired state.
	if _, err := k.h.client.SetDesired(context.Background(), k.id, json.RawMessage(`{"idleTimeout":"10s"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "idle timeout applied and the hub reachable", func() bool {
		st := k.state()
		return st.IdleMs == 10000 && st.Hub.Reachable
	})
	return k
}

// browser starts headless Chromium with the flags of test-peers.md; stopped with t.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1024),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	return ctx
}

// state is the agent's shell state, read as the shell's pages read it.
func (k *kioskShell) state() shell.State {
	k.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+k.addr+"/shell/api/state", nil)
	req.Header.Set(shell.Header, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		k.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st shell.State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		k.t.Fatal(err)
	}
	return st
}

// until waits for a JavaScript condition of the page; text(sel) is an element's text.
func (k *kioskShell) until(what, expr string) {
	k.t.Helper()
	js := `((text) => (` + expr + `))((sel) => { const e = document.querySelector(sel); return e ? e.textContent : ''; })`
	deadline := time.Now().Add(40 * time.Second)
	for {
		ok, err := chromedp.Run(k.ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			page, _ := chromedp.Run(k.ctx, chromedp.Evaluate[string](`location.href + '\n' + document.body.innerText`))
			k.t.Fatalf("waiting for %s: %v; the page:\n%s", what, err, page)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (k *kioskShell) click(sel string) {
	k.t.Helper()
	if err := chromedp.Do(k.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		k.t.Fatalf("click %s: %v", sel, err)
	}
}

func (k *kioskShell) eval(js string) string {
	k.t.Helper()
	s, err := chromedp.Run(k.ctx, chromedp.Evaluate[string](js, chromedp.EvalAsValue, chromedp.EvalAwaitPromise))
	if err != nil {
		k.t.Fatalf("evaluate %s: %v", js, err)
	}
	return s
}

func (k *kioskShell) shot(name string) {
	k.t.Helper()
	b, err := chromedp.Run(k.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		k.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(k.shots, name+".png"), b, 0o644); err != nil {
		k.t.Error(err)
	}
}

// cookies returns every cookie the browser holds for the shell, HttpOnly ones included.
func (k *kioskShell) cookies() string {
	k.t.Helper()
	out, err := chromedp.Run(k.ctx, func(ctx context.Context, t *chromedp.Target) (string, error) {
		var res struct {
			Cookies []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"cookies"`
		}
		err := t.Call(ctx, "Network.getCookies", map[string]any{"urls": []string{"http://" + k.addr + "/shell/"}}, &res)
		b, _ := json.Marshal(res.Cookies)
		return string(b), err
	})
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

var canaries = []string{idcardsim.CanaryResident, idcard.MaskNumber(idcardsim.CanaryResident), "张三丰", "张*丰"}

// noCanary fails if any canary is in s.
func noCanary(t *testing.T, where, s string) {
	t.Helper()
	for _, c := range canaries {
		if strings.Contains(s, c) {
			t.Errorf("%s holds %q after the wipe", where, c)
		}
	}
}

// A citizen taps the canary card, is logged in (acr idcard), prints a form (it lands
// byte-identical on ippeveprinter, with the progress shown), walks away: the countdown shows, the
// agent wipes the session, and the next person finds nothing of the citizen in the page, the
// browser's cookies and storage, the agent's files or its session state; the attestation and the
// journal reach the hub intact. Then a QR login approved on a scripted phone, a paper-out mid-print
// told in plain words and raised at the hub, and the elderly mode and English checked for text
// size, contrast and touch targets, with screenshots.
func TestKioskShell(t *testing.T) {
	k := startKioskShell(t)
	if err := chromedp.Do(k.ctx, chromedp.Navigate("http://"+k.addr+"/")); err != nil {
		t.Fatal(err)
	}
	k.until("the attract screen", `document.querySelector('#screen').dataset.view === 'attract' && !document.querySelector('#login-card').disabled`)
	k.shot("attract-zh")
	k.click("#login-card")
	k.until("the citizen greeted by name, masked", `text('#greeting').includes('张*丰')`)
	if st := k.state(); st.Session == nil || st.Session.ACR != shell.ACRIDCard {
		t.Fatalf("session after the card login: %+v", st.Session)
	}
	// What a kiosk app might leave in the browser during the session.
	k.eval(`(async () => {
		localStorage.setItem('holder', '张*丰'); sessionStorage.setItem('holder', '张*丰');
		document.cookie = 'holder=' + encodeURIComponent('张*丰') + '; path=/';
		await new Promise((ok) => { const r = indexedDB.open('app'); r.onupgradeneeded = () => r.result.createObjectStore('s');
			r.onsuccess = () => { const tx = r.result.transaction('s', 'readwrite'); tx.objectStore('s').put('张*丰', 'holder'); tx.oncomplete = () => { r.result.close(); ok(); }; }; });
		return 'ok'; })()`)
	if !strings.Contains(k.cookies(), "kf_shell_session") {
		t.Fatalf("no session cookie: %s", k.cookies())
	}

	// Print a form: progress shown, the job byte-identical on the printer.
	k.click("#svc-print")
	k.until("the materials", `document.querySelector('#print-form-residence-permit') !== null`)
	k.click("#print-form-residence-permit")
	k.until("printing done, progress full", `text('#print-status').includes('打印完成') && document.querySelector('#progress').getAttribute('aria-valuenow') === '100'`)
	want, err := shell.BuiltinMaterials().Fetch(context.Background(), "form-residence-permit", true)
	if err != nil {
		t.Fatal(err)
	}
	jobs := jobFiles(t, filepath.Join(k.simDir, "ipp"))
	if len(jobs) != 1 || !bytes.Equal(jobs[0], want) {
		t.Fatalf("%d jobs on the printer; the first is not the %d bytes of the form", len(jobs), len(want))
	}

	// Walk away: the countdown, then the wipe.
	k.until("the countdown", `!document.querySelector('#countdown').hidden && text('#countdown-text').includes('秒后将退出')`)
	k.shot("countdown-zh")
	k.until("the next person's attract screen", `location.pathname === '/shell/' && document.querySelector('#screen').dataset.view === 'attract'`)
	st := k.state()
	if st.Session != nil || st.Wipes != 1 || st.LastWipe == nil {
		t.Fatalf("after the wipe: %+v", st)
	}
	a := st.LastWipe
	if a.Reason != "idle" || a.ACR != shell.ACRIDCard || a.Files != 1 || a.Tokens != 1 || a.Revoked != 1 || a.Connections < 1 || a.Prints != 1 {
		t.Errorf("attestation %+v", a)
	}
	noCanary(t, "the page", k.eval(`document.documentElement.outerHTML + document.body.innerText`))
	noCanary(t, "the cookies", k.cookies())
	if c := k.cookies(); c != "null" && c != "[]" {
		t.Errorf("cookies after the wipe: %s", c)
	}
	if s := k.eval(`(async () => JSON.stringify([localStorage.length, sessionStorage.length, (await indexedDB.databases()).length]))()`); s != "[0,0,0]" {
		t.Errorf("browser storage after the wipe (localStorage, sessionStorage, IndexedDB): %s", s)
	}
	b, _ := json.Marshal(st)
	noCanary(t, "the agent's session state", string(b))
	filepath.WalkDir(k.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			noCanary(t, "the agent's file "+p, string(b))
		}
		return nil
	})
	// The log may name a card masked (idcard.Identity.LogValue), never in full.
	if b, _ := os.ReadFile(k.agent.log); bytes.Contains(b, []byte(idcardsim.CanaryResident)) || bytes.Contains(b, []byte("张三丰")) {
		t.Error("the agent's log holds the card's number or name")
	}
	if ents, _ := os.ReadDir(filepath.Join(k.dir, "shell", "sessions")); len(ents) != 0 {
		t.Errorf("session folders left: %v", ents)
	}

	// The attestation reaches the hub, in an intact journal ending with a signed checkpoint.
	var wiped wire.JournalEntry
	waitFor(t, 30*time.Second, "the session.wiped entry at the hub", func() bool {
		for _, r := range k.h.records(k.id, wire.KindJournal) {
			if e, err := wire.DecodeJournalEntry(r.Body); err == nil && e.Type == shell.TypeWiped {
				wiped = e
				return true
			}
		}
		return false
	})
	if wiped.Sig == "" || wiped.Counts["files"] != 1 || wiped.Counts["revoked"] != 1 || wiped.Refs["reason"] != "idle" {
		t.Errorf("session.wiped entry %+v", wiped)
	}
	waitFor(t, 30*time.Second, "the hub's journal verified up to the wipe", func() bool {
		j, err := k.h.client.Journal(context.Background(), k.id)
		return err == nil && j.Index >= wiped.Index && j.Checkpoint >= wiped.Index
	})
	if j, _ := k.h.client.Journal(context.Background(), k.id); !j.Intact || len(j.Events) != 0 {
		t.Errorf("journal at the hub: %+v", j)
	}

	// QR login, approved on a phone by a staff account (citizen accounts come later).
	k.click("#login-qr")
	k.until("the QR code", `document.querySelector('#qr-code') !== null && text('#qr-user-code').length === 9`)
	k.shot("qr-zh")
	code, uri := k.eval(`document.querySelector('#qr-user-code').textContent`), k.eval(`document.querySelector('#qr-uri').textContent`)
	phone := identitytest.NewBrowserFor(k.h.client.BaseURL)
	phone.C.Transport = k.h.client.HTTP.Transport
	p, err := phone.Get(uri + "?user_code=" + url.QueryEscape(code))
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		switch {
		case strings.Contains(p.Body, `name="password"`):
			p, err = phone.Submit(p, url.Values{"username": {"admin"}, "password": {adminPassword(t, k.h)}})
		case strings.Contains(p.Body, `value="approve"`):
			p, err = phone.Submit(p, url.Values{"action": {"approve"}})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	k.until("the home screen after the QR login", `document.querySelector('#screen').dataset.view === 'home' && text('#greeting') !== ''`)
	if st := k.state(); st.Session == nil || st.Session.ACR != shell.ACRDevice {
		t.Fatalf("session after the QR login: %+v (last page %d %.200s)", st.Session, p.Status, p.Body)
	}

	// Paper out mid-print: told in plain words, raised at the hub.
	if resp, err := http.Post(k.control+"/devices/a4/faults/media-empty", "", nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("devsim fault: %v", err)
	}
	k.click("#svc-print")
	k.until("the materials", `document.querySelector('#print-guide-social-security') !== null`)
	k.click("#print-guide-social-security")
	k.until("the paper-out message", `text('#print-status').includes('缺纸') && text('#print-status').includes('服务台')`)
	k.shot("paper-out-zh")
	waitFor(t, 30*time.Second, "the paper-out alert at the hub", func() bool {
		for _, r := range k.h.records(k.id, wire.KindAlert) {
			if strings.Contains(string(r.Body), "a4") && strings.Contains(string(r.Body), "media-empty") {
				return true
			}
		}
		return false
	})
	http.Post(k.control+"/devices/a4/faults/media-empty?on=false", "", nil)

	// Elderly mode and English: text size, contrast, touch targets; screenshots.
	k.click("#back")
	k.until("home", `document.querySelector('#screen').dataset.view === 'home'`)
	normal := k.fontSize("#screen p")
	k.checkContrast("standard, zh-CN")
	k.click("#care")
	k.until("elderly mode", `document.documentElement.classList.contains('care')`)
	if care := k.fontSize("#screen p"); care < 1.5*normal {
		t.Errorf("elderly mode text %.1fpx, standard %.1fpx: want at least 1.5x", care, normal)
	}
	k.checkContrast("elderly, zh-CN")
	if small := k.eval(`JSON.stringify([...document.querySelectorAll('button')].filter((b) => b.offsetParent && (b.getBoundingClientRect().height < 60 || b.getBoundingClientRect().width < 60)).map((b) => b.id || b.textContent))`); small != "[]" {
		t.Errorf("touch targets under 60 px in elderly mode: %s", small)
	}
	k.shot("home-care-zh")
	k.click("#lang")
	k.until("English", `document.documentElement.lang === 'en' && text('#greeting').startsWith('Hello')`)
	k.checkContrast("elderly, English")
	k.shot("home-care-en")
	k.click("#care")
	k.until("standard mode", `!document.documentElement.classList.contains('care')`)
	k.checkContrast("standard, English")
	k.shot("home-en")
	k.click("#logout")
	k.until("the attract screen after logout", `location.pathname === '/shell/' && document.querySelector('#screen').dataset.view === 'attract'`)
	if st := k.state(); st.Session != nil || st.Wipes != 2 || st.LastWipe.Reason != "logout" || st.LastWipe.ACR != shell.ACRDevice {
		t.Errorf("after logout: %+v", st)
	}
	t.Logf("screenshots in %s", k.shots)
}

func (k *kioskShell) fontSize(sel string) float64 {
	k.t.Helper()
	s := k.eval(`String(parseFloat(getComputedStyle(document.querySelector(` + strconv.Quote(sel) + `)).fontSize))`)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		k.t.Fatalf("font size of %s: %q", sel, s)
	}
	return f
}

// checkContrast computes, for every visible element with text of its own, the contrast ratio
// (WCAG 2.x) of its colour against the background it is drawn on, and wants at least 4.5:1.
func (k *kioskShell) checkContrast(mode string) {
	k.t.Helper()
	bad := k.eval(`(() => {
		const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
		const lum = ([r, g, b]) => { const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
		const bg = (e) => { for (; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length === 3 || c[3] > 0) return c.slice(0, 3); } return [255, 255, 255]; };
		const out = [];
		for (const e of document.querySelectorAll('body *')) {
			if (!e.offsetParent && getComputedStyle(e).position !== 'fixed') continue;
			const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
			if (!own) continue;
			const a = lum(rgb(getComputedStyle(e).color)), b = lum(bg(e));
			const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
			if (ratio < 4.5) out.push(e.tagName + '#' + e.id + ' ' + ratio.toFixed(2) + ' ' + e.textContent.trim().slice(0, 20));
		}
		return JSON.stringify(out);
	})()`)
	if bad != "[]" {
		k.t.Errorf("%s: text under 4.5:1 contrast: %s", mode, bad)
	}
}

// jobFiles returns the documents ippeveprinter kept (-k), oldest first.
func jobFiles(t *testing.T, dir string) [][]byte {
	t.Helper()
	var out [][]byte
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".pdf") {
			b, _ := os.ReadFile(p)
			out = append(out, b)
		}
		return nil
	})
	return out
}

// The hub unreachable: the shell says what is unavailable and keeps what works (guest use,
// printing, scanning, the built-in guide); what happened reaches the hub, as an intact journal,
// once it is back. The restart command waits for no citizen: refused during the session, run
// after it.
func TestKioskShellOffline(t *testing.T) {
	k := startKioskShell(t)
	k.h.p.stop()
	waitFor(t, 30*time.Second, "the shell seeing the hub gone", func() bool { return !k.state().Hub.Reachable })
	if err := chromedp.Do(k.ctx, chromedp.Navigate("http://"+k.addr+"/shell/?lang=en")); err != nil {
		t.Fatal(err)
	}
	k.until("the offline notice", `!document.querySelector('#offline').hidden && text('#offline').includes('No network') &&
		document.querySelector('#login-card').disabled && document.querySelector('#login-qr').disabled`)
	k.shot("offline-en")
	k.click("#guest")
	k.until("the guest's home", `document.querySelector('#screen').dataset.view === 'home' && document.querySelector('#svc-cases').disabled`)
	k.click("#svc-print")
	k.until("the materials", `document.querySelector('#print-form-residence-permit') !== null`)
	k.click("#print-form-residence-permit")
	k.until("printed offline", `text('#print-status').includes('Printing is done')`)
	k.click("#back")
	k.click("#svc-guide")
	k.until("the built-in guide", `text('#screen').includes('Residence permit') && text('.demo').includes('Sample content')`)
	scanned := false
	if _, err := os.Stat(filepath.Join(k.simDir, "sane")); err == nil {
		k.click("#back")
		k.click("#svc-scan")
		k.until("the scan screen", `document.querySelector('#scan-start') !== null`)
		k.click("#scan-start")
		k.until("scanned offline, kept for the session", `text('#scans').includes('kept only until you sign out')`)
		scanned = true
	}

	// A restart must not cut the citizen off. The command waits in the hub until it is back.
	k.h.start()
	c, err := k.h.client.SendCommand(context.Background(), k.id, api.CreateCommand{Name: api.CmdRestart, TTL: "5m"})
	if err != nil {
		t.Fatal(err)
	}
	done, err := k.h.client.Command(context.Background(), c.ID, 30*time.Second)
	if err != nil || done.State != api.CommandFailed || !strings.Contains(done.Error, "a citizen is using the kiosk") {
		t.Fatalf("restart during a session: %+v, %v", done, err)
	}
	var types []string
	waitFor(t, 30*time.Second, "the offline transactions at the hub, verified", func() bool {
		types = types[:0]
		for _, r := range k.h.records(k.id, wire.KindJournal) {
			if e, err := wire.DecodeJournalEntry(r.Body); err == nil {
				types = append(types, e.Type)
			}
		}
		j, err := k.h.client.Journal(context.Background(), k.id)
		return err == nil && int(j.Index) == len(types) && len(types) >= 3
	})
	want := "print receipt session.login" // the receipt may come after the scan
	if scanned {
		want = "print receipt scan session.login"
	}
	if slices.Sort(types); strings.Join(types, " ") != want {
		t.Errorf("journal at the hub: %v, want %s", types, want)
	}
	if j, _ := k.h.client.Journal(context.Background(), k.id); !j.Intact {
		t.Errorf("journal: %+v", j)
	}
	k.click("#logout")
	k.until("the attract screen", `location.pathname === '/shell/' && document.querySelector('#screen').dataset.view === 'attract'`)
	c, err = k.h.client.SendCommand(context.Background(), k.id, api.CreateCommand{Name: api.CmdRestart, TTL: "5m"})
	if err != nil {
		t.Fatal(err)
	}
	if done, err = k.h.client.Command(context.Background(), c.ID, 30*time.Second); err != nil || done.State != api.CommandSucceeded {
		t.Fatalf("restart after the session: %+v, %v", done, err)
	}
	waitFor(t, 30*time.Second, "the agent started again", func() bool { return countLines(k.agent.log, "kiosk agent starting") == 2 })
	if k.agent.exited() {
		t.Fatal("the agent process exited instead of restarting in place")
	}
}
