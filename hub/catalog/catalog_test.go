package catalog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/catalog"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/postgres"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/bundle"
	"github.com/kioskfleet/kioskfleet/pkg/pgtest"
	"github.com/kioskfleet/kioskfleet/pkg/polltest"
)

// TestMain runs the package on a PostgreSQL server of its own (pgtest) for the replica test.
func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

var (
	admin = catalog.Actor{ID: "u-admin", Roles: []string{catalog.RoleAdmin}}
	dev   = catalog.Actor{ID: "u-dev", Roles: []string{catalog.RoleDeveloper}, Department: "tax"}
	devB  = catalog.Actor{ID: "u-dev-hr", Roles: []string{catalog.RoleDeveloper}, Department: "hr"}
	rev   = catalog.Actor{ID: "u-rev", Roles: []string{catalog.RoleReviewer}}
	op    = catalog.Actor{ID: "u-op", Roles: []string{catalog.RoleOperator}}
	ops   = catalog.Actor{ID: "u-fieldops", Roles: []string{"fieldops"}}
)

func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newCatalog(t testing.TB, st catalog.Store) *catalog.Catalog {
	t.Helper()
	c, err := catalog.New(catalog.Config{Store: st, Refresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ok[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// setup makes departments tax and hr and a web-link app "tax-web" of tax.
func setup(t *testing.T) (*catalog.Catalog, *sqlite.Store) {
	st := openStore(t)
	return setupOn(t, st), st
}

// setupOn is setup on a store of the caller's.
func setupOn(t *testing.T, st catalog.Store) *catalog.Catalog {
	c := newCatalog(t, st)
	ctx := t.Context()
	for _, d := range []string{"tax", "hr"} {
		ok[api.Department](t)(c.CreateDepartment(ctx, admin, api.Department{ID: d, Name: "Dept " + d}))
	}
	ok[api.App](t)(c.CreateApp(ctx, dev, api.CreateApp{ID: "tax-web", Department: "tax", Kind: api.KindWebLink, Name: "个税查询"}))
	return c
}

func webVersion(v string) api.CreateVersion {
	return api.CreateVersion{Version: v, Spec: api.AppSpec{Entry: "https://etax.example.gov.cn/" + v}}
}

// drive brings version v of tax-web to state (on channel web for the channel states) as admin.
func drive(t *testing.T, c *catalog.Catalog, v, state string) {
	t.Helper()
	ctx := t.Context()
	ok[api.AppVersion](t)(c.CreateVersion(ctx, dev, "tax-web", webVersion(v)))
	path := map[string][]api.Transition{
		api.StateDraft:     nil,
		api.StateSubmitted: {{To: api.StateSubmitted}},
		api.StateRejected:  {{To: api.StateSubmitted}, {To: api.StateRejected, Reason: "incomplete"}},
		api.StateApproved:  {{To: api.StateSubmitted}, {To: api.StateApproved}},
		api.StateRetired:   {{To: api.StateSubmitted}, {To: api.StateApproved}, {To: api.StateRetired, Reason: "old"}},
		api.StatePublished: {{To: api.StateSubmitted}, {To: api.StateApproved}, {To: api.StatePublished, Channel: api.ChannelWeb}},
		api.StateListed: {{To: api.StateSubmitted}, {To: api.StateApproved}, {To: api.StatePublished, Channel: api.ChannelWeb},
			{To: api.StateListed, Channel: api.ChannelWeb}},
		api.StateDelisted: {{To: api.StateSubmitted}, {To: api.StateApproved}, {To: api.StatePublished, Channel: api.ChannelWeb},
			{To: api.StateListed, Channel: api.ChannelWeb}, {To: api.StateDelisted, Channel: api.ChannelWeb, Reason: "pause"}},
	}[state]
	for _, tr := range path {
		ok[[]api.AuditEntry](t)(c.Transition(ctx, admin, "tax-web", v, tr))
	}
}

// TestLifecycle tries every transition, at the version's level and on a channel, from every
// state, by every role: exactly those of catalog.Rules by their role succeed (and are audited);
// the others are refused, 403 (ErrForbidden) for the wrong role or department, 409
// (ErrNotAllowed) for a transition the table does not have.
func TestLifecycle(t *testing.T) {
	c, _ := setup(t)
	ctx := t.Context()
	states := []string{api.StateDraft, api.StateSubmitted, api.StateApproved, api.StateRejected, api.StatePublished,
		api.StateListed, api.StateDelisted, api.StateRetired}
	actors := map[string]catalog.Actor{"admin": admin, "developer": dev, "developer of hr": devB, "reviewer": rev, "operator": op, "fieldops": ops}
	n, allowed := 0, 0
	for _, from := range states {
		onChannel := slices.Contains([]string{api.StatePublished, api.StateListed, api.StateDelisted}, from)
		for _, channel := range []bool{false, true} {
			if onChannel && !channel {
				continue // those states exist only on a channel
			}
			if channel && !onChannel && from != api.StateApproved {
				continue // on a channel, a version is approved or beyond
			}
			for _, to := range states {
				for name, who := range actors {
					n++
					v := fmt.Sprintf("1.0.%d", n)
					drive(t, c, v, from)
					tr := api.Transition{To: to, Reason: "a reason"}
					if channel {
						tr.Channel = api.ChannelWeb
					}
					before := ok[[]api.AuditEntry](t)(c.Audit(ctx, admin, "tax-web", v, 0))
					es, err := c.Transition(ctx, who, "tax-web", v, tr)
					r, inTable := ruleFor(from, to, channel)
					may := inTable && (name == "admin" || (r.Role == catalog.RoleDeveloper && name == "developer") || (r.Role != catalog.RoleDeveloper && slices.Contains(who.Roles, r.Role)))
					what := fmt.Sprintf("%s: %s -> %s (channel %v)", name, from, to, channel)
					switch {
					case may && err != nil:
						t.Errorf("%s: refused: %v", what, err)
					case may:
						allowed++
						last := es[len(es)-1]
						if last.From != from || last.To != to || last.Actor != who.ID || last.Reason != "a reason" || last.At.IsZero() ||
							(channel && last.Channel != api.ChannelWeb) {
							t.Errorf("%s: audit entry %+v", what, last)
						}
						mine := slices.DeleteFunc(slices.Clone(es), func(e api.AuditEntry) bool { return e.Version != v })
						after := ok[[]api.AuditEntry](t)(c.Audit(ctx, admin, "tax-web", v, 0))
						if len(after) != len(before)+len(mine) {
							t.Errorf("%s: audit trail grew by %d, want %d", what, len(after)-len(before), len(mine))
						}
					case !inTable && !errors.Is(err, catalog.ErrNotAllowed):
						t.Errorf("%s: err = %v, want ErrNotAllowed", what, err)
					case inTable && !errors.Is(err, catalog.ErrForbidden):
						t.Errorf("%s: err = %v, want ErrForbidden", what, err)
					case !may:
						if !strings.Contains(err.Error(), from) && !strings.Contains(err.Error(), "role") && !strings.Contains(err.Error(), "department") {
							t.Errorf("%s: the refusal does not say why: %v", what, err)
						}
						after := ok[[]api.AuditEntry](t)(c.Audit(ctx, admin, "tax-web", v, 0))
						if len(after) != len(before) {
							t.Errorf("%s: refused, but audited", what)
						}
					}
				}
			}
		}
	}
	if want := len(catalog.Rules) * 2; allowed != want { // each rule: admin and its role (the developer of tax, or reviewer, or operator), no one else
		t.Errorf("%d transitions allowed, want %d (each of %d rules by admin and by its role)", allowed, want, len(catalog.Rules))
	}
}

func ruleFor(from, to string, channel bool) (catalog.Rule, bool) {
	for _, r := range catalog.Rules {
		if r.From == from && r.To == to && r.Channel == channel {
			return r, true
		}
	}
	return catalog.Rule{}, false
}

func TestReasonRequired(t *testing.T) {
	c, _ := setup(t)
	drive(t, c, "1.0.0", api.StateSubmitted)
	_, err := c.Transition(t.Context(), rev, "tax-web", "1.0.0", api.Transition{To: api.StateRejected, Reason: "  "})
	if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "reason") {
		t.Fatalf("reject without reason: %v", err)
	}
}

// TestFourEyes: a reviewer who is also a developer does not review what they submitted.
func TestFourEyes(t *testing.T) {
	c, _ := setup(t)
	ctx := t.Context()
	both := catalog.Actor{ID: "u-both", Roles: []string{catalog.RoleDeveloper, catalog.RoleReviewer}, Department: "tax"}
	ok[api.AppVersion](t)(c.CreateVersion(ctx, both, "tax-web", webVersion("1.0.0")))
	ok[[]api.AuditEntry](t)(c.Transition(ctx, both, "tax-web", "1.0.0", api.Transition{To: api.StateSubmitted}))
	_, err := c.Transition(ctx, both, "tax-web", "1.0.0", api.Transition{To: api.StateApproved})
	if !errors.Is(err, catalog.ErrForbidden) || !strings.Contains(err.Error(), "another reviewer") {
		t.Fatalf("self-approval: %v", err)
	}
	ok[[]api.AuditEntry](t)(c.Transition(ctx, rev, "tax-web", "1.0.0", api.Transition{To: api.StateApproved}))
}

// TestDepartmentIsolation: a developer of hr neither changes nor reads tax's apps and guides.
func TestDepartmentIsolation(t *testing.T) {
	c, _ := setup(t)
	ctx := t.Context()
	drive(t, c, "1.0.0", api.StateDraft)
	ok[api.Guide](t)(c.CreateGuide(ctx, dev, api.CreateGuide{ID: "g-tax", Department: "tax", Title: "完税证明"}))
	refused := map[string]error{}
	_, refused["create app in tax"] = c.CreateApp(ctx, devB, api.CreateApp{ID: "x-app", Department: "tax", Kind: api.KindWebLink, Name: "x"})
	_, refused["create version"] = c.CreateVersion(ctx, devB, "tax-web", webVersion("2.0.0"))
	_, refused["update draft"] = c.UpdateVersion(ctx, devB, "tax-web", "1.0.0", webVersion("1.0.0"))
	_, refused["submit"] = c.Transition(ctx, devB, "tax-web", "1.0.0", api.Transition{To: api.StateSubmitted})
	_, refused["read app"] = c.App(ctx, devB, "tax-web")
	_, refused["read audit"] = c.Audit(ctx, devB, "tax-web", "", 0)
	_, refused["create guide in tax"] = c.CreateGuide(ctx, devB, api.CreateGuide{ID: "g-x", Department: "tax", Title: "x"})
	_, refused["read guide"] = c.Guide(ctx, devB, "g-tax")
	_, refused["add guide version"] = c.AddGuideVersion(ctx, devB, "g-tax", goodGuide())
	_, refused["department"] = c.CreateDepartment(ctx, devB, api.Department{ID: "new", Name: "x"})
	for what, err := range refused {
		if !errors.Is(err, catalog.ErrForbidden) {
			t.Errorf("%s: err = %v, want ErrForbidden", what, err)
		} else if what != "department" && !strings.Contains(err.Error(), "hr") {
			t.Errorf("%s: the refusal does not name the department: %v", what, err)
		}
	}
	if as := ok[[]api.App](t)(c.Apps(ctx, devB, store.AppFilter{})); len(as) != 0 {
		t.Errorf("hr's developer lists %v", as)
	}
	if as := ok[[]api.App](t)(c.Apps(ctx, dev, store.AppFilter{})); len(as) != 1 {
		t.Errorf("tax's developer lists %v", as)
	}
	// The developer of tax can, within its department.
	ok[api.AppVersion](t)(c.UpdateVersion(ctx, dev, "tax-web", "1.0.0", webVersion("1.0.0")))
}

// TestListSupersedesAndRetire: a channel lists one version of an app; retiring pulls a version
// from every channel; each effect is audited.
func TestListSupersedesAndRetire(t *testing.T) {
	c, _ := setup(t)
	ctx := t.Context()
	drive(t, c, "1.0.0", api.StateListed)
	drive(t, c, "1.1.0", api.StatePublished)
	es := ok[[]api.AuditEntry](t)(c.Transition(ctx, op, "tax-web", "1.1.0", api.Transition{To: api.StateListed, Channel: api.ChannelWeb}))
	if len(es) != 2 || es[0].Version != "1.0.0" || es[0].To != api.StateDelisted || es[0].Reason != "superseded by 1.1.0" || es[1].To != api.StateListed {
		t.Fatalf("listing 1.1.0: %+v", es)
	}
	pub := ok[*catalog.Snapshot](t)(c.Published(ctx))
	if e := pub.Entries(api.ChannelWeb); len(e) != 1 || e[0].Version != "1.1.0" {
		t.Fatalf("web lists %+v", e)
	}
	ok[[]api.AuditEntry](t)(c.Transition(ctx, op, "tax-web", "1.1.0", api.Transition{To: api.StatePublished, Channel: api.ChannelMobile}))
	es = ok[[]api.AuditEntry](t)(c.Transition(ctx, op, "tax-web", "1.1.0", api.Transition{To: api.StateRetired, Reason: "replaced by the portal"}))
	if len(es) != 3 || es[2].To != api.StateRetired || es[2].Channel != "" {
		t.Fatalf("retire: %+v", es)
	}
	v := ok[api.AppVersion](t)(c.Version(ctx, rev, "tax-web", "1.1.0"))
	if v.State != api.StateRetired || v.Channels[api.ChannelWeb] != api.StateRetired || v.Channels[api.ChannelMobile] != api.StateRetired {
		t.Fatalf("retired version: %+v", v)
	}
	pub = ok[*catalog.Snapshot](t)(c.Published(ctx))
	if e := pub.Entries(api.ChannelWeb); len(e) != 0 {
		t.Fatalf("web lists a retired version: %+v", e)
	}
	// On a channel the kind does not reach: refused as invalid.
	drive(t, c, "2.0.0", api.StateApproved)
	if _, err := c.Transition(ctx, op, "tax-web", "2.0.0", api.Transition{To: api.StatePublished, Channel: api.ChannelMiniProgram}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("web link on the mini-program: %v", err)
	}
}

func TestKioskBundleNeedsBundle(t *testing.T) {
	c, _ := setup(t)
	ctx := t.Context()
	ok[api.App](t)(c.CreateApp(ctx, dev, api.CreateApp{ID: "tax-kiosk", Department: "tax", Kind: api.KindKioskBundle, Name: "完税证明打印"}))
	v := ok[api.AppVersion](t)(c.CreateVersion(ctx, dev, "tax-kiosk", api.CreateVersion{Version: "1.0.0",
		Spec: api.AppSpec{Services: []string{"Printer"}, Peripherals: []string{"document-printer"}}}))
	if v.Spec.Entry != "index.html" {
		t.Fatalf("default entry: %+v", v.Spec)
	}
	if _, err := c.Transition(ctx, dev, "tax-kiosk", "1.0.0", api.Transition{To: api.StateSubmitted}); !errors.Is(err, catalog.ErrNotAllowed) ||
		!strings.Contains(err.Error(), "upload") {
		t.Fatalf("submit without bundle: %v", err)
	}
	_, err := c.CreateVersion(ctx, dev, "tax-kiosk", api.CreateVersion{Version: "1.0.1",
		Spec: api.AppSpec{Services: []string{"Login"}, Peripherals: []string{"teleporter"}, MinAgent: "one", Entry: "../x"}})
	var ie *catalog.InvalidError
	if !errors.As(err, &ie) || len(ie.Fields) != 4 {
		t.Fatalf("bad kiosk spec: %v", err)
	}
}

func goodGuide() api.GuideDoc {
	return api.GuideDoc{
		Title:      "个人所得税完税证明开具",
		Summary:    "为纳税人开具个人所得税完税证明。",
		Conditions: []string{"已在本市缴纳个人所得税"},
		Materials:  []api.Material{{Name: "居民身份证", Form: api.FormOriginal, Copies: 1, Required: true}},
		Steps:      []api.Step{{Title: "刷身份证登录"}, {Title: "选择年度", Description: "可选近三年"}, {Title: "打印证明"}},
		TimeLimit:  api.TimeLimit{LegalDays: 20, PromisedDays: 0},
		LegalBasis: []string{"《中华人民共和国个人所得税法》"},
		Locations:  []api.Location{{Name: "福田区政务服务中心", Address: "福中三路8号", Hours: "周一至周五 9:00-12:00, 13:30-17:00"}},
		Contact:    "12366",
	}
}

func TestGuideValidation(t *testing.T) {
	c, _ := setup(t)
	ctx := t.Context()
	ok[api.Guide](t)(c.CreateGuide(ctx, dev, api.CreateGuide{ID: "g-tax", Department: "tax", Title: "完税证明"}))
	bad := goodGuide()
	bad.Title = ""
	bad.Materials = append(bad.Materials, api.Material{Name: "表格", Form: "fax", Copies: 0, Template: &api.Template{Name: "申请表", SHA256: strings.Repeat("0", 64)}})
	bad.Steps = nil
	bad.TimeLimit = api.TimeLimit{LegalDays: 5, PromisedDays: 10}
	bad.Fees = []api.Fee{{Item: "工本费", AmountFen: -1}}
	_, err := c.AddGuideVersion(ctx, dev, "g-tax", bad)
	var ie *catalog.InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("bad guide: %v", err)
	}
	for _, f := range []string{"title", "materials[1].form", "materials[1].copies", "materials[1].template.sha256", "steps", "timeLimit.promisedDays", "fees[0].amountFen"} {
		if !slices.ContainsFunc(ie.Fields, func(s string) bool { return strings.HasPrefix(s, f+":") }) {
			t.Errorf("problem with %s not reported: %v", f, ie.Fields)
		}
	}
	// With an uploaded template, the size is filled in.
	pdf := []byte("%PDF-1.7\n% a blank form\n")
	info := ok[api.TemplateInfo](t)(c.UploadTemplate(ctx, dev, pdf))
	if _, err := c.UploadTemplate(ctx, dev, []byte("<html>")); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a non-PDF template: %v", err)
	}
	g := goodGuide()
	g.Materials[0].Template = &api.Template{Name: "申请表", SHA256: info.SHA256}
	v := ok[api.GuideVersion](t)(c.AddGuideVersion(ctx, dev, "g-tax", g))
	if v.Version != 1 || v.Doc.Materials[0].Template.Size != int64(len(pdf)) {
		t.Fatalf("guide version: %+v", v)
	}
}

// TestPublishedGuide: a guide version is served only once an app listed on some channel was
// published with it; the page has the labels of its language.
func TestPublishedGuide(t *testing.T) {
	c, _ := setup(t)
	ctx := t.Context()
	ok[api.Guide](t)(c.CreateGuide(ctx, dev, api.CreateGuide{ID: "g-tax", Department: "tax", Title: "完税证明"}))
	ok[api.GuideVersion](t)(c.AddGuideVersion(ctx, dev, "g-tax", goodGuide()))
	req := webVersion("1.0.0")
	req.Guide = &api.GuideRef{ID: "g-tax", Version: 1}
	ok[api.AppVersion](t)(c.CreateVersion(ctx, dev, "tax-web", req))
	pub := ok[*catalog.Snapshot](t)(c.Published(ctx))
	if _, found := pub.Guide("g-tax", 0, false, ""); found {
		t.Fatal("a guide of a draft app is public")
	}
	for _, tr := range []api.Transition{{To: api.StateSubmitted}, {To: api.StateApproved}, {To: api.StatePublished, Channel: api.ChannelWeb},
		{To: api.StateListed, Channel: api.ChannelWeb}} {
		ok[[]api.AuditEntry](t)(c.Transition(ctx, admin, "tax-web", "1.0.0", tr))
	}
	pub = ok[*catalog.Snapshot](t)(c.Published(ctx))
	p, found := pub.Guide("g-tax", 0, false, "")
	if !found {
		t.Fatal("the guide of a listed app is not public")
	}
	var g api.PublishedGuide
	if err := json.Unmarshal(p.Body, &g); err != nil || g.Version != 1 || g.Doc.Title != goodGuide().Title || g.DepartmentName != "Dept tax" {
		t.Fatalf("published guide: %+v, %v", g, err)
	}
	zh, _ := pub.Guide("g-tax", 1, true, catalog.LangZH)
	en, _ := pub.Guide("g-tax", 1, true, catalog.LangEN)
	for _, want := range []string{"申请条件", "申请材料", "办理流程", "法定办结时限", "20 个工作日", "即办", "不收费", "设定依据", "办理地点和时间", "12366", "《中华人民共和国个人所得税法》"} {
		if !strings.Contains(string(zh.Body), want) {
			t.Errorf("zh-CN page lacks %q", want)
		}
	}
	for _, want := range []string{"Conditions", "Required materials", "Statutory time limit", "Free of charge", "Legal basis", "Where and when", "居民身份证"} {
		if !strings.Contains(string(en.Body), want) {
			t.Errorf("English page lacks %q", want)
		}
	}
	var cc api.ChannelCatalog
	web, _ := pub.Channel(api.ChannelWeb)
	if err := json.Unmarshal(web.Body, &cc); err != nil || len(cc.Apps) != 1 || cc.Apps[0].Guide == nil || cc.Apps[0].Guide.Version != 1 {
		t.Fatalf("web catalog: %s, %v", web.Body, err)
	}
}

// TestPublishedAcrossReplicas: a change made through one hub replica's Catalog shows there at
// once, and at another replica's (its own connection to the same database) within its refresh
// interval: a stale snapshot heals in bounded time. On SQLite (one store, two catalogs) and on
// PostgreSQL (two stores on one database, as two hubs).
func TestPublishedAcrossReplicas(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		st := openStore(t)
		acrossReplicas(t, st, st)
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		url := pgtest.DB(t)
		open := func() *postgres.Store {
			s, err := postgres.Open(context.Background(), url, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		acrossReplicas(t, open(), open())
	})
}

func acrossReplicas(t *testing.T, here, there catalog.Store) {
	const refresh = 100 * time.Millisecond
	c := setupOn(t, here)
	ctx := t.Context()
	other, err := catalog.New(catalog.Config{Store: there, Refresh: refresh})
	if err != nil {
		t.Fatal(err)
	}
	listed := func(c *catalog.Catalog) int {
		t.Helper()
		return len(ok[*catalog.Snapshot](t)(c.Published(ctx)).Entries(api.ChannelWeb))
	}
	if listed(other) != 0 {
		t.Fatal("listed before anything was")
	}
	// The other replica's snapshot is now current; each change below makes it stale.
	heals := func(what string, want int) {
		t.Helper()
		if listed(c) != want {
			t.Fatalf("%s: own change not shown at once", what)
		}
		start := time.Now()
		// Bound: the refresh interval, with slack for a loaded machine.
		polltest.Until(t, refresh+5*time.Second, what+": the other replica healed", func() bool { return listed(other) == want })
		t.Logf("%s: the other replica healed in %v", what, time.Since(start).Round(time.Millisecond))
	}
	drive(t, c, "1.0.0", api.StateListed)
	heals("listed", 1)
	ok[[]api.AuditEntry](t)(c.Transition(ctx, op, "tax-web", "1.0.0", api.Transition{To: api.StateDelisted, Channel: api.ChannelWeb, Reason: "maintenance"}))
	heals("delisted", 0)
}

func TestUploadBundle(t *testing.T) {
	c, _ := setup(t)
	ctx := t.Context()
	ok[api.App](t)(c.CreateApp(ctx, dev, api.CreateApp{ID: "tax-print", Department: "tax", Kind: api.KindKioskBundle, Name: "完税证明打印"}))
	ok[api.AppVersion](t)(c.CreateVersion(ctx, dev, "tax-print", api.CreateVersion{Version: "1.0.0"}))
	m := bundle.Manifest{App: "tax-print", Version: "1.0.0", Entry: "main.html", Services: []string{"Printer", "IdCard"}, Peripherals: []string{"document-printer"}, MinAgent: "0.2.0"}
	archive, err := bundle.Build(m, map[string][]byte{"main.html": []byte("<h1>x</h1>")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadBundle(ctx, devB, "tax-print", "1.0.0", archive); !errors.Is(err, catalog.ErrForbidden) {
		t.Fatalf("hr uploads tax's bundle: %v", err)
	}
	if _, err := c.UploadBundle(ctx, dev, "tax-print", "1.0.0", []byte("junk")); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("junk bundle: %v", err)
	}
	other, _ := bundle.Build(bundle.Manifest{App: "other", Version: "1.0.0"}, map[string][]byte{"index.html": nil})
	if _, err := c.UploadBundle(ctx, dev, "tax-print", "1.0.0", other); !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "other@1.0.0") {
		t.Fatalf("bundle of another app: %v", err)
	}
	v := ok[api.AppVersion](t)(c.UploadBundle(ctx, dev, "tax-print", "1.0.0", archive))
	if v.Spec.Entry != "main.html" || v.Spec.MinAgent != "0.2.0" || len(v.Spec.Services) != 2 || v.Spec.Bundle == nil ||
		v.Spec.Bundle.Size != int64(len(archive)) || v.Spec.Bundle.Target != "bundles/tax-print/1.0.0.tar.gz" {
		t.Fatalf("after upload: %+v", v.Spec)
	}
	got := ok[[]byte](t)(c.Bundle(ctx, rev, "tax-print", "1.0.0"))
	if string(got) != string(archive) {
		t.Fatal("downloaded bundle differs")
	}
	ok[[]api.AuditEntry](t)(c.Transition(ctx, dev, "tax-print", "1.0.0", api.Transition{To: api.StateSubmitted}))
	if _, err := c.UploadBundle(ctx, dev, "tax-print", "1.0.0", archive); !errors.Is(err, catalog.ErrNotAllowed) {
		t.Fatalf("upload after submitting: %v", err)
	}
}
