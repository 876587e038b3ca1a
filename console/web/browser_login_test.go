package web_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/kioskfleet/kioskfleet/console/web"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// TestBrowserStaffLogin: in Chromium on a phone-sized screen, a county engineer logs in through
// the hub's login page (the console and the hub over HTTPS, the console's cookies secure), sees
// their county's kiosk and not the other's, with their name and scope in the header, without the
// page overflowing sideways; logging out ends at the console's login page.
func TestBrowserStaffLogin(t *testing.T) {
	ctx := browser(t, chromedp.Flag("ignore-certificate-errors", true)) // the test certificates of the hub and the console
	sc := newStaffConsole(t)
	for _, s := range []fleet.Site{{ID: "futian-1", Name: "福田", Region: "440304"}, {ID: "nanshan-1", Name: "南山", Region: "440305"}} {
		if _, err := sc.admin.CreateSite(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	futian, nanshan := sc.enroll("futian-1"), sc.enroll("nanshan-1")
	sc.browser().login("admin", sc.hub.Credentials["admin password (user admin)"], "/")
	sc.admin = &api.Client{BaseURL: sc.admin.BaseURL, HTTP: sc.admin.HTTP, Token: web.AccessTokens(sc.srv)[0]}
	pw := sc.staff("nanshan1", []string{"fieldops"}, "440305")

	noOverflow := `document.documentElement.scrollWidth <= window.innerWidth`
	if err := chromedp.Do(ctx, chromedp.Navigate(sc.url+"/devices?lang=zh-CN")); err != nil {
		t.Fatal(err)
	}
	until(t, ctx, "the hub's login page", `document.querySelector('#u') !== null && location.href.startsWith(`+jsString(sc.hub.HTTPURL)+`) && `+noOverflow)
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(`#u`), "nanshan1"), chromedp.SetValue(chromedp.CSS(`#p`), pw)); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, `button[type=submit]`)
	until(t, ctx, "the devices page as the engineer",
		`location.pathname === '/devices' && text('#live').includes(`+jsString(nanshan)+`) && text('#who').includes('nanshan1') && text('#who').includes('440305') && `+noOverflow)
	if page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`)); strings.Contains(page, futian) {
		t.Fatalf("the other county's kiosk is shown:\n%s", page)
	}
	if cookies, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`)); cookies != "" {
		t.Fatalf("cookies readable by scripts: %q", cookies) // all HttpOnly
	}
	click(t, ctx, `form.who button`)
	until(t, ctx, "the console's login page after logout", `location.href.startsWith(`+jsString(sc.url)+`) && document.querySelector('#login') !== null`)
}

func jsString(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }
