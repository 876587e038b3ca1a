package web_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kioskfleet/kioskfleet/console/web"
	"github.com/kioskfleet/kioskfleet/console/web/webtest"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

const chromium = "/usr/bin/chromium"

// browser starts headless Chromium for the test; it is stopped with t.
func browser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("browser test skipped: %s not found (install the Debian package chromium)", chromium)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(390, 844),
	}
	opts = append(opts, extra...)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute) // a guard against a hung browser, not a timing
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	return ctx
}

// TestBrowser loads the overview in Chromium on a phone-sized screen, finds the faulty kiosk,
// follows it to its page, sees the fault in words, sends a command through the form (with the
// CSRF token the page carries), and sees the overview update itself when a kiosk goes offline.
// With KF_CONSOLE_SCREENSHOTS=DIR it saves screenshots there.
func TestBrowser(t *testing.T) {
	ctx := browser(t)
	hub := webtest.NewHub(t)
	srv, err := web.New(web.Config{Hub: hub.Client(), Refresh: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	shots := os.Getenv("KF_CONSOLE_SCREENSHOTS")
	shot := func(name string) {
		if shots == "" {
			return
		}
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			return
		}
		os.WriteFile(filepath.Join(shots, name+".png"), b, 0o644)
	}

	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(ts.URL+"/?lang=zh-CN"), // Chromium asks for en-US; the choice is kept in a cookie
	); err != nil {
		t.Fatal(err)
	}
	until(t, ctx, "the overview's problems list "+webtest.PaperOut+" with paper out",
		`text('#problems').includes('`+webtest.PaperOut+`') && text('#problems').includes('缺纸')`)
	shot("overview")

	click(t, ctx, `#problems a[href="/devices/`+webtest.PaperOut+`"]`)
	until(t, ctx, "the kiosk's page saying its receipt printer is out of paper",
		`location.pathname === '/devices/`+webtest.PaperOut+`' && text('#reasons').includes('凭条打印机 receipt0：缺纸')`)
	shot("device")

	// Send a command through the form: the browser carries the CSRF cookie and field.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#cmd-form input[name=name]`), "diagnostics"),
		chromedp.Click(chromedp.CSS(`#cmd-form button`)),
	); err != nil {
		t.Fatal(err)
	}
	until(t, ctx, "the page saying the command was sent", `document.querySelector('.flash') !== null`)
	if cs := hub.Commands(webtest.PaperOut); len(cs) == 0 || cs[0].Name != "diagnostics" {
		t.Fatalf("hub got no diagnostics command: %+v", cs)
	}

	// Live update: the overview shows a kiosk going offline without a reload.
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/?lang=en")); err != nil {
		t.Fatal(err)
	}
	until(t, ctx, "the overview in English", `document.documentElement.lang === 'en' && text('#problems') !== ''`)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	hub.Update(webtest.OK, func(d *fleet.Device) { d.Online = false; d.PresenceAt = time.Now() })
	until(t, ctx, "the overview showing "+webtest.OK+" offline by itself",
		`window.notReloaded && document.querySelector('#problems a[href="/devices/`+webtest.OK+`"]') !== null`)
	// It came over the WebSocket (the content security policy lets the page open it).
	until(t, ctx, "the update over the WebSocket", `document.getElementById('live-status').className === 'ws'`)
	shot("overview-en")

	if shots != "" { // the same pages on a desktop screen, for a person to look at
		for _, p := range []string{"/", "/devices/" + webtest.DiskLow} {
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(ts.URL+p)); err != nil {
				t.Fatal(err)
			}
			until(t, ctx, p, `text('#live') !== ''`)
			shot("desktop" + strings.ReplaceAll(p, "/", "-"))
		}
	}
}

// until waits for a state of the page, given as a JavaScript expression that may use text(sel),
// the text of the element sel (empty when there is none). The page replaces #live every refresh, so
// the whole check runs in the page in one go (never query a node, then read it: it may be gone in
// between). A navigation ends a poll early; the check then starts again on the new page.
func until(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	const prelude = `((text) => (EXPR))((sel) => { const e = document.querySelector(sel); return e ? e.textContent : ''; })`
	js := strings.Replace(prelude, "EXPR", expr, 1)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(time.Until(deadline))))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + '\n' + document.body.innerText`))
			t.Fatalf("waiting for %s: %v; the page:\n%s", what, err, page)
		}
		time.Sleep(50 * time.Millisecond) // the new page is loading
	}
}

// click clicks the element sel with the mouse where the page shows it, as a person does. The
// position is found in the page in one go, so a live refresh cannot remove the node in between.
// setValues fills form fields, again while the page's live refresh replaces the nodes between
// the lookup and the write ("No node with given id found"), until a deadline.
func setValues(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := chromedp.Do(ctx, actions...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("filling the form: %v", err)
		}
	}
}

func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	pt, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => {
		const e = document.querySelector(`+strconv.Quote(sel)+`);
		if (!e) return null;
		e.scrollIntoView({block: 'center'});
		const r = e.getBoundingClientRect();
		return [r.x + r.width / 2, r.y + r.height / 2];
	})()`))
	if err != nil || len(pt) != 2 {
		t.Fatalf("no %s to click: %v", sel, err)
	}
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(pt[0], pt[1])); err != nil {
		t.Fatal(err)
	}
}
