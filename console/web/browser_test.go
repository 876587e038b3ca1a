package web_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
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
func browser(t *testing.T) context.Context {
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
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
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
		chromedp.WaitVisible(chromedp.CSS("#problems")),
	); err != nil {
		t.Fatal(err)
	}
	problems, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#problems")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(problems, webtest.PaperOut) || !strings.Contains(problems, "缺纸") {
		t.Fatalf("overview problems do not list %s with paper out:\n%s", webtest.PaperOut, problems)
	}
	shot("overview")

	link := chromedp.CSS(`#problems a[href="/devices/` + webtest.PaperOut + `"]`)
	if err := chromedp.Do(ctx, chromedp.Click(link), chromedp.WaitVisible(chromedp.CSS("#reasons"))); err != nil {
		t.Fatal(err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.HasSuffix(loc, "/devices/"+webtest.PaperOut) {
		t.Fatalf("location %q, %v", loc, err)
	}
	reasons, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#reasons")))
	if err != nil || !strings.Contains(reasons, "凭条打印机 receipt0：缺纸") {
		t.Fatalf("device page reasons %q, %v", reasons, err)
	}
	shot("device")

	// Send a command through the form: the browser carries the CSRF cookie and field.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#cmd-form input[name=name]`), "diagnostics"),
		chromedp.Click(chromedp.CSS(`#cmd-form button`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	); err != nil {
		t.Fatal(err)
	}
	if cs := hub.Commands(webtest.PaperOut); len(cs) == 0 || cs[0].Name != "diagnostics" {
		t.Fatalf("hub got no diagnostics command: %+v", cs)
	}

	// Live update: the overview shows a kiosk going offline without a reload.
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/?lang=en"), chromedp.WaitVisible(chromedp.CSS("#problems"))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	hub.Update(webtest.OK, func(d *fleet.Device) { d.Online = false; d.PresenceAt = time.Now() })
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`window.notReloaded && document.querySelector('#problems a[href="/devices/`+webtest.OK+`"]') !== null`,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("overview did not show %s offline by itself: %v", webtest.OK, err)
	}
	shot("overview-en")

	if shots != "" { // the same pages on a desktop screen, for a person to look at
		for _, p := range []string{"/", "/devices/" + webtest.DiskLow} {
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(ts.URL+p),
				chromedp.WaitVisible(chromedp.CSS("#live"))); err != nil {
				t.Fatal(err)
			}
			shot("desktop" + strings.ReplaceAll(p, "/", "-"))
		}
	}
}
