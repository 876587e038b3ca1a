package web_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kioskfleet/kioskfleet/console/web"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/proctest"
)

// TestAcceptanceBulkAndAlerts is issue 14's acceptance in Chromium, with a real hub (its HTTPS,
// its OpenID Provider, its API) and three real kiosk agents, one with devsim's simulated
// peripherals speaking their real bytes:
//
//   - a county engineer logs in through the hub's login page;
//   - on a desktop screen she asks for a bulk desired-state change to region 4403: the hub counts
//     the two kiosks of her county (not the third, in the next county), she confirms, and the
//     job's page follows both kiosks live until each reports running the new version, which
//     the hub's state shows; the audit log has one entry per kiosk;
//   - on a phone screen, paper-out in devsim appears live on the alerts page; she acknowledges
//     the alert, silences it for a maintenance window, opens a work order (a paper roll for the
//     printer suggested from its data) and closes it, and resolves the alert, all by tapping.
//
// Screenshots (desktop and phone, zh-CN and English) go to $KF_CONSOLE_SCREENSHOTS or a
// temporary folder; none overflows sideways.
func TestAcceptanceBulkAndAlerts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs kiosk-agent and devsim; skipped with -short")
	}
	start := time.Now()
	phase := func(what string) { t.Logf("%5.1fs %s", time.Since(start).Seconds(), what) }
	bin := buildCmds(t, "agent/cmd/kiosk-agent", "drivers/cmd/devsim")
	phase("built kiosk-agent and devsim")
	shots := os.Getenv("KF_CONSOLE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	sc := newStaffConsole(t)
	boot := sc.admin
	for _, s := range []fleet.Site{{ID: "nanshan-1", Name: "南山", Region: "440305"}, {ID: "futian-1", Name: "福田", Region: "440304"}} {
		if _, err := boot.CreateSite(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	// Three real agents: two in Nanshan (the first with simulated peripherals), one in Futian.
	data := t.TempDir()
	sim := startDevsim(t, bin, filepath.Join(data, "devsim"))
	var agents []string
	for i, site := range []string{"nanshan-1", "nanshan-1", "futian-1"} {
		tok, err := boot.CreateToken(t.Context(), api.CreateToken{SiteID: site})
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(data, fmt.Sprint("agent", i))
		out, err := exec.Command(filepath.Join(bin, "kiosk-agent"), "enroll", "--data", dir, "--hub", sc.hub.HTTPURL,
			"--token", tok.Secret, "--model", "KF-K200").CombinedOutput()
		if err != nil {
			t.Fatalf("enroll: %v\n%s", err, out)
		}
		args := []string{"run", "--data", dir, "--max-backoff", "1s"}
		if i == 0 {
			args = append(args, "--devices", filepath.Join(sim, "devices.yaml"), "--profiles", "../../firmware-profiles")
		}
		proctest.Start(t, filepath.Join(bin, "kiosk-agent"), args...)
	}
	proctest.Eventually(t, 30*time.Second, "three kiosks online, the first with its peripherals", func() bool {
		devs, err := boot.ListDevices(t.Context(), api.DeviceQuery{Status: "online"})
		if err != nil || len(devs) != 3 {
			return false
		}
		agents = agents[:0]
		withPeriph := false
		for _, d := range devs {
			agents = append(agents, d.ID)
			withPeriph = withPeriph || len(d.Peripherals) > 0
		}
		return withPeriph
	})
	phase("hub up, three kiosks online")
	var nanshan []string
	devs, _ := boot.ListDevices(t.Context(), api.DeviceQuery{Region: "440305"})
	for _, d := range devs {
		nanshan = append(nanshan, d.ID)
	}
	slices.Sort(nanshan)

	// The admin creates the engineer's account (with a token of their own: staff accounts are
	// managed by an admin who logged in), and reads the console's audit page later.
	adminBrowser := sc.browser()
	adminBrowser.login("admin", sc.hub.Credentials["admin password (user admin)"], "/")
	sc.admin = &api.Client{BaseURL: boot.BaseURL, HTTP: boot.HTTP, Token: web.AccessTokens(sc.srv)[0]}
	pw := sc.staff("nanshan1", []string{"fieldops"}, "440305")

	ctx := browser(t, chromedp.Flag("ignore-certificate-errors", true))
	noOverflow := `document.documentElement.scrollWidth <= window.innerWidth`
	shot := func(name string) {
		t.Helper()
		until(t, ctx, name+" without sideways overflow", noOverflow)
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Desktop, zh-CN: log in through the hub's page.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(sc.url+"/bulk?lang=zh-CN")); err != nil {
		t.Fatal(err)
	}
	until(t, ctx, "the hub's login page", `document.querySelector('#u') !== null && location.href.startsWith(`+jsString(sc.hub.HTTPURL)+`)`)
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(`#u`), "nanshan1"), chromedp.SetValue(chromedp.CSS(`#p`), pw)); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, `button[type=submit]`)
	until(t, ctx, "the bulk page as the engineer", `location.pathname === '/bulk' && text('#who').includes('nanshan1') && document.querySelector('#bulk-form') !== null`)

	// Count: the filter names the whole city, the hub counts the engineer's county only.
	setValues(t, ctx,
		chromedp.SetValue(chromedp.CSS(`#bulk-form input[name=region]`), "4403"),
		chromedp.SetValue(chromedp.CSS(`#bulk-action`), "desired"),
		chromedp.SetValue(chromedp.CSS(`#bulk-form textarea[name=patch]`), `{"heartbeatInterval":"20s"}`),
	)
	click(t, ctx, `#bulk-count`)
	phase("logged in through the hub")
	until(t, ctx, "the count of the engineer's kiosks", `text('#bulk-matches') === '2'`)
	shot("desktop-zh-bulk-count")
	click(t, ctx, `#bulk-confirm button`)
	until(t, ctx, "the job's page with both kiosks acked, live",
		`location.pathname.startsWith('/bulk/b-') && text('#n-acked') === '2' && text('#job-state').includes('已完成')`)
	phase("bulk job done")
	shot("desktop-zh-bulk-job")
	jobID, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname.slice('/bulk/'.length)`))
	if err != nil {
		t.Fatal(err)
	}

	// The hub's state: each of the two runs the new desired version; the third has none.
	for _, id := range agents {
		st, err := boot.State(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(nanshan, id) {
			if st.Desired != nil {
				t.Errorf("kiosk %s outside the scope got desired state %s", id, st.Desired.Doc)
			}
			continue
		}
		var doc map[string]string
		if st.Desired == nil || json.Unmarshal(st.Desired.Doc, &doc) != nil || doc["heartbeatInterval"] != "20s" || st.Reported == nil ||
			st.Reported.Version != st.Desired.Version || st.Reported.Error != "" {
			t.Errorf("kiosk %s state: desired %+v reported %+v", id, st.Desired, st.Reported)
		}
	}
	items, err := boot.BulkItems(t.Context(), jobID)
	if err != nil || len(items) != 2 || items[0].DeviceID != nanshan[0] || items[1].DeviceID != nanshan[1] ||
		items[0].State != api.BulkAcked || items[1].State != api.BulkAcked {
		t.Fatalf("job %s items: %+v %v", jobID, items, err)
	}
	// The audit log: the request and one entry per kiosk, in the engineer's name, on the
	// admin's audit page.
	audit := adminBrowser.get("/audit?actor=nanshan1&lang=en").body
	for _, id := range nanshan {
		if !strings.Contains(audit, "/api/v1/devices/"+id+"/desired") {
			t.Errorf("the audit page lacks the change of %s", id)
		}
	}
	if n := strings.Count(audit, "bulk desired "+jobID); n != 2 {
		t.Errorf("the audit page shows %d entries of job %s, want 2:\n%s", n, jobID, between(audit, `id="audit"`, "</table>"))
	}

	// Desktop, English: the job's page.
	if err := chromedp.Do(ctx, chromedp.Navigate(sc.url+"/bulk/"+jobID+"?lang=en")); err != nil {
		t.Fatal(err)
	}
	until(t, ctx, "the job's page in English", `document.documentElement.lang === 'en' && text('#job-state').includes('done')`)
	shot("desktop-en-bulk-job")

	// Phone, English: paper-out shows live on the alerts page and opens an alert; acknowledged and
	// resolved by tapping.
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(sc.url+"/alerts?lang=en"),
	); err != nil {
		t.Fatal(err)
	}
	until(t, ctx, "the alerts page, none open", `document.querySelector('#alerts') !== null && document.querySelector('#alerts .card') === null`)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	shot("phone-en-alerts-none")
	if out, err := exec.Command(filepath.Join(bin, "devsim"), "ctl", "--dir", sim, "fault", "receipt0", "paper-out").CombinedOutput(); err != nil {
		t.Fatalf("inject paper-out: %v\n%s", err, out)
	}
	phase("alerts page on the phone")
	injected := time.Now()
	until(t, ctx, "the paper-out alert, live", `window.notReloaded && text('#alerts').includes('receipt0') && text('#alerts').includes('paper out') && document.querySelector('#alerts .alert-open button.ack') !== null`)
	t.Logf("paper-out alert on the phone %v after devsim's fault", time.Since(injected))
	shot("phone-en-alert-open")
	as, err := boot.ListAlerts(t.Context(), false)
	if err != nil || len(as) != 1 || as[0].Subject != "receipt0" || as[0].Detail != "paper-out" {
		t.Fatalf("alerts: %+v %v", as, err)
	}
	alertID := as[0].ID
	click(t, ctx, fmt.Sprintf(`#alert-%d button.ack`, alertID))
	until(t, ctx, "the alert acknowledged", fmt.Sprintf(`document.querySelector('#alert-%d.alert-acknowledged button.resolve') !== null`, alertID))
	shot("phone-en-alert-acked")
	// A maintenance window: silenced for 2 h, by tapping.
	click(t, ctx, fmt.Sprintf(`#alert-%d button.silence`, alertID))
	until(t, ctx, "the alert silenced", fmt.Sprintf(`document.querySelector('#alert-%d .silenced') !== null`, alertID))
	if ss, err := boot.ListSilences(t.Context()); err != nil || len(ss) != 1 || ss[0].DeviceID != as[0].DeviceID || ss[0].Rule != "peripheral-fault" ||
		ss[0].CreatedBy != "nanshan1" || ss[0].EndsAt.Sub(ss[0].StartsAt) != 2*time.Hour {
		t.Fatalf("silences: %+v %v", ss, err)
	}
	// A work order: what to bring is suggested from the printer's data; closed from the phone.
	click(t, ctx, fmt.Sprintf(`#alert-%d a.workorder`, alertID))
	until(t, ctx, "the work order form, a paper roll suggested", `document.querySelector('#wo-form') !== null && document.querySelector('#wo-form input[name=bring]').value.startsWith('Paper roll · Receipt printer receipt0')`)
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(`#wo-form input[name=assignee]`), "Li Wei")); err != nil {
		t.Fatal(err)
	}
	shot("phone-en-workorder-form")
	click(t, ctx, `#wo-form button`)
	until(t, ctx, "the work order listed", `location.pathname === '/workorders' && text('#workorders').includes('Li Wei') && text('#workorders').includes('Paper roll')`)
	shot("phone-en-workorders")
	click(t, ctx, `#workorders .wo-open button.close-wo`)
	until(t, ctx, "the work order closed", `location.pathname === '/workorders' && document.querySelector('#workorders .wo-open') === null`)
	if ws, err := boot.ListWorkOrders(t.Context(), true); err != nil || len(ws) != 1 || ws[0].State != "closed" || ws[0].ClosedBy != "nanshan1" ||
		ws[0].Assignee != "Li Wei" || ws[0].AlertID != alertID {
		t.Fatalf("work orders: %+v %v", ws, err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(sc.url+"/alerts")); err != nil {
		t.Fatal(err)
	}
	until(t, ctx, "the alerts page again", fmt.Sprintf(`document.querySelector('#alert-%d button.resolve') !== null`, alertID))
	click(t, ctx, fmt.Sprintf(`#alert-%d button.resolve`, alertID))
	until(t, ctx, "the alert gone from the unresolved ones", fmt.Sprintf(`location.pathname === '/alerts' && document.querySelector('#alert-%d.alert-open, #alert-%d.alert-acknowledged') === null`, alertID, alertID))
	phase("alert acknowledged, silenced, work order closed, alert resolved")
	all, err := boot.ListAlerts(t.Context(), true)
	i := slices.IndexFunc(all, func(a api.Alert) bool { return a.ID == alertID })
	if err != nil || i < 0 || all[i].State != "resolved" || all[i].AckBy != "nanshan1" || all[i].ResolvedBy != "nanshan1" {
		t.Fatalf("alert after resolve: %+v %v", all, err)
	}

	// Phone, zh-CN: the bulk page and the alerts page.
	for _, p := range []string{"/bulk", "/alerts?all=1"} {
		if err := chromedp.Do(ctx, chromedp.Navigate(sc.url+p+map[bool]string{true: "&", false: "?"}[strings.Contains(p, "?")]+"lang=zh-CN")); err != nil {
			t.Fatal(err)
		}
		until(t, ctx, p+" in Chinese", `document.documentElement.lang === 'zh-CN' && text('#live') !== ''`)
		shot("phone-zh" + strings.NewReplacer("/", "-", "?", "-", "=", "-").Replace(p))
	}
	phase("done; screenshots in " + shots)
}
