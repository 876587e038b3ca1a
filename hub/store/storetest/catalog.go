package storetest

import (
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// RunCatalog runs the suite of store.Catalog.
func RunCatalog(t *testing.T, open func(t *testing.T) store.Catalog) {
	suite[store.Catalog]{
		{"Departments", testDepartments},
		{"Apps", testApps},
		{"Versions", testVersions},
		{"Changes", testChanges},
		{"ChangesAtomic", testChangesAtomic},
		{"ChangesConcurrent", testChangesConcurrent},
		{"Audit", testAudit},
		{"Guides", testGuides},
	}.run(t, open)
}

// CatalogFixture creates department dept and app of kind in it (if missing) and version ver of
// the app in state draft.
func CatalogFixture(t testing.TB, s store.Catalog, dept, app, kind, ver string) store.AppVersion {
	t.Helper()
	ctx := t.Context()
	if _, err := s.GetDepartment(ctx, dept); errors.Is(err, store.ErrNotFound) {
		must(t, s.CreateDepartment(ctx, store.Department{ID: dept, Name: "Dept " + dept, CreatedAt: T0}))
	}
	if _, err := s.GetApp(ctx, app); errors.Is(err, store.ErrNotFound) {
		must(t, s.CreateApp(ctx, store.App{ID: app, DepartmentID: dept, Kind: kind, Name: "App " + app, CreatedAt: T0, CreatedBy: "u-dev"}))
	}
	v := store.AppVersion{AppID: app, Version: ver, State: "draft", Spec: json.RawMessage(`{"entry":"index.html"}`),
		CreatedAt: T0, CreatedBy: "u-dev", UpdatedAt: T0}
	must(t, s.CreateVersion(ctx, v, store.AuditEntry{AppID: app, Version: ver, To: "draft", Actor: "u-dev", At: T0}))
	got, err := s.GetVersion(ctx, app, ver)
	must(t, err)
	return got
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testDepartments(t *testing.T, s store.Catalog) {
	ctx := t.Context()
	b := store.Department{ID: "tax", Name: "税务局 Tax", CreatedAt: T0}
	a := store.Department{ID: "hr", Name: "人社局 Human resources", CreatedAt: T0.Add(time.Second)}
	must(t, s.CreateDepartment(ctx, b))
	must(t, s.CreateDepartment(ctx, a))
	wantErr(t, "duplicate department", s.CreateDepartment(ctx, b), store.ErrExists)
	wantErr(t, "department without name", s.CreateDepartment(ctx, store.Department{ID: "x"}), store.ErrInvalid)
	got, err := s.GetDepartment(ctx, "tax")
	if err != nil || got != b {
		t.Fatalf("GetDepartment = %+v, %v; want %+v", got, err, b)
	}
	_, err = s.GetDepartment(ctx, "nope")
	wantErr(t, "unknown department", err, store.ErrNotFound)
	all, err := s.ListDepartments(ctx)
	if err != nil || !slices.Equal(all, []store.Department{a, b}) {
		t.Fatalf("ListDepartments = %+v, %v; want by id", all, err)
	}
}

func testApps(t *testing.T, s store.Catalog) {
	ctx := t.Context()
	must(t, s.CreateDepartment(ctx, store.Department{ID: "tax", Name: "Tax", CreatedAt: T0}))
	must(t, s.CreateDepartment(ctx, store.Department{ID: "hr", Name: "HR", CreatedAt: T0}))
	apps := []store.App{
		{ID: "tax-print", DepartmentID: "tax", Kind: "kiosk-bundle", Name: "完税证明打印", Description: "print", CreatedAt: T0, CreatedBy: "u1"},
		{ID: "hr-web", DepartmentID: "hr", Kind: "web-link", Name: "社保查询", CreatedAt: T0, CreatedBy: "u2"},
		{ID: "tax-web", DepartmentID: "tax", Kind: "web-link", Name: "个税", CreatedAt: T0, CreatedBy: "u1"},
	}
	for _, a := range apps {
		must(t, s.CreateApp(ctx, a))
	}
	wantErr(t, "duplicate app", s.CreateApp(ctx, apps[0]), store.ErrExists)
	wantErr(t, "app of unknown department", s.CreateApp(ctx, store.App{ID: "x", DepartmentID: "nope", Kind: "web-link", Name: "x"}), store.ErrNotFound)
	wantErr(t, "app without kind", s.CreateApp(ctx, store.App{ID: "x", DepartmentID: "tax", Name: "x"}), store.ErrInvalid)
	got, err := s.GetApp(ctx, "tax-print")
	if err != nil || got != apps[0] {
		t.Fatalf("GetApp = %+v, %v; want %+v", got, err, apps[0])
	}
	_, err = s.GetApp(ctx, "nope")
	wantErr(t, "unknown app", err, store.ErrNotFound)
	for _, tc := range []struct {
		f    store.AppFilter
		want []string
	}{
		{store.AppFilter{}, []string{"hr-web", "tax-print", "tax-web"}},
		{store.AppFilter{DepartmentID: "tax"}, []string{"tax-print", "tax-web"}},
		{store.AppFilter{Kind: "web-link"}, []string{"hr-web", "tax-web"}},
		{store.AppFilter{DepartmentID: "tax", Kind: "web-link"}, []string{"tax-web"}},
		{store.AppFilter{DepartmentID: "none"}, []string{}},
	} {
		as, err := s.ListApps(ctx, tc.f)
		ids := []string{}
		for _, a := range as {
			ids = append(ids, a.ID)
		}
		if err != nil || !slices.Equal(ids, tc.want) || as == nil {
			t.Errorf("ListApps(%+v) = %v, %v; want %v", tc.f, ids, err, tc.want)
		}
	}
}

func testVersions(t *testing.T, s store.Catalog) {
	ctx := t.Context()
	// Creation order, not the order of the version strings.
	for _, v := range []string{"1.10.0", "1.9.0", "2.0.0"} {
		CatalogFixture(t, s, "tax", "tax-print", "kiosk-bundle", v)
	}
	v := store.AppVersion{AppID: "tax-print", Version: "1.9.0", State: "draft", CreatedAt: T0}
	wantErr(t, "duplicate version", s.CreateVersion(ctx, v, store.AuditEntry{AppID: "tax-print", Version: "1.9.0", To: "draft", At: T0}), store.ErrExists)
	v.AppID = "nope"
	wantErr(t, "version of unknown app", s.CreateVersion(ctx, v, store.AuditEntry{AppID: "nope", Version: "1.9.0", To: "draft", At: T0}), store.ErrNotFound)

	vs, err := s.ListVersions(ctx, "tax-print")
	if err != nil || len(vs) != 3 || vs[0].Version != "1.10.0" || vs[1].Version != "1.9.0" || vs[2].Version != "2.0.0" {
		t.Fatalf("ListVersions = %+v, %v; want creation order", vs, err)
	}
	got := vs[1]
	if got.State != "draft" || string(got.Spec) != `{"entry":"index.html"}` || got.CreatedBy != "u-dev" || !got.CreatedAt.Equal(T0) ||
		got.Releases == nil || len(got.Releases) != 0 {
		t.Fatalf("version = %+v", got)
	}

	// A draft's description may change; once it has moved on, not any more.
	got.Spec, got.GuideID, got.GuideVersion, got.UpdatedAt = json.RawMessage(`{"entry":"main.html"}`), "g1", 2, T0.Add(time.Hour)
	must(t, s.UpdateVersion(ctx, got, "draft"))
	again, err := s.GetVersion(ctx, "tax-print", "1.9.0")
	if err != nil || string(again.Spec) != `{"entry":"main.html"}` || again.GuideID != "g1" || again.GuideVersion != 2 ||
		!again.UpdatedAt.Equal(T0.Add(time.Hour)) || again.State != "draft" {
		t.Fatalf("after UpdateVersion: %+v, %v", again, err)
	}
	_, err = s.ApplyChanges(ctx, []store.AppChange{{AppID: "tax-print", Version: "1.9.0", From: "draft", To: "submitted", Actor: "u-dev", At: T0}})
	must(t, err)
	wantErr(t, "update of a submitted version", s.UpdateVersion(ctx, got, "draft"), store.ErrStale)
	wantErr(t, "update of an unknown version", s.UpdateVersion(ctx, store.AppVersion{AppID: "tax-print", Version: "9"}, "draft"), store.ErrNotFound)
	_, err = s.GetVersion(ctx, "tax-print", "9")
	wantErr(t, "unknown version", err, store.ErrNotFound)
	if vs, err := s.ListVersions(ctx, "nope"); err != nil || len(vs) != 0 {
		t.Fatalf("ListVersions(unknown app) = %v, %v", vs, err)
	}
}

func change(app, ver, ch, from, to string) store.AppChange {
	return store.AppChange{AppID: app, Version: ver, Channel: ch, From: from, To: to, Actor: "u-op", Reason: "because", At: T0.Add(time.Minute)}
}

func testChanges(t *testing.T, s store.Catalog) {
	ctx := t.Context()
	CatalogFixture(t, s, "tax", "a", "web-link", "1")
	gen0, err := s.CatalogGeneration(ctx)
	must(t, err)
	apply := func(cs ...store.AppChange) []store.AuditEntry {
		t.Helper()
		es, err := s.ApplyChanges(ctx, cs)
		must(t, err)
		return es
	}
	apply(change("a", "1", "", "draft", "submitted"))
	apply(change("a", "1", "", "submitted", "approved"))
	// On a channel without a release, the version's own state is the one expected.
	_, err = s.ApplyChanges(ctx, []store.AppChange{change("a", "1", "web", "draft", "published")})
	wantErr(t, "channel change from a stale state", err, store.ErrStale)
	es := apply(change("a", "1", "web", "approved", "published"), change("a", "1", "mobile", "approved", "published"))
	if len(es) != 2 || es[0].N >= es[1].N || es[0].From != "approved" || es[0].To != "published" || es[0].Channel != "web" ||
		es[0].Actor != "u-op" || es[0].Reason != "because" || !es[0].At.Equal(T0.Add(time.Minute)) {
		t.Fatalf("audit entries = %+v", es)
	}
	apply(change("a", "1", "web", "published", "listed"))
	v, err := s.GetVersion(ctx, "a", "1")
	if err != nil || v.State != "approved" || !maps(v.Releases, map[string]string{"web": "listed", "mobile": "published"}) {
		t.Fatalf("version = %+v, %v", v, err)
	}
	// Once on a channel, the release's state is the one expected there.
	_, err = s.ApplyChanges(ctx, []store.AppChange{change("a", "1", "web", "approved", "published")})
	wantErr(t, "channel change from the version's state", err, store.ErrStale)
	_, err = s.ApplyChanges(ctx, []store.AppChange{change("a", "9", "", "draft", "submitted")})
	wantErr(t, "change of an unknown version", err, store.ErrNotFound)
	_, err = s.ApplyChanges(ctx, []store.AppChange{change("a", "1", "", "approved", "")})
	wantErr(t, "change without a new state", err, store.ErrInvalid)

	CatalogFixture(t, s, "tax", "b", "web-link", "1")
	apply(change("b", "1", "", "draft", "submitted"), change("b", "1", "", "submitted", "approved"), change("b", "1", "web", "approved", "published"))
	for _, tc := range []struct {
		f    store.ReleaseFilter
		want []string
	}{
		{store.ReleaseFilter{}, []string{"a/1/mobile/published", "a/1/web/listed", "b/1/web/published"}},
		{store.ReleaseFilter{Channel: "web"}, []string{"a/1/web/listed", "b/1/web/published"}},
		{store.ReleaseFilter{Channel: "web", State: "listed"}, []string{"a/1/web/listed"}},
		{store.ReleaseFilter{AppID: "b"}, []string{"b/1/web/published"}},
		{store.ReleaseFilter{Channel: "kiosk"}, []string{}},
	} {
		rs, err := s.ListReleases(ctx, tc.f)
		got := []string{}
		for _, r := range rs {
			got = append(got, r.AppID+"/"+r.Version+"/"+r.Channel+"/"+r.State)
			if !r.UpdatedAt.Equal(T0.Add(time.Minute)) {
				t.Errorf("release %+v: updated at %v", r, r.UpdatedAt)
			}
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ListReleases(%+v) = %v, %v; want %v", tc.f, got, err, tc.want)
		}
	}
	gen1, err := s.CatalogGeneration(ctx)
	if err != nil || gen1 <= gen0 {
		t.Fatalf("generation %d -> %d, %v: want it to grow", gen0, gen1, err)
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// testChangesAtomic: a group of changes where one finds a stale state leaves nothing changed,
// not even the audit trail.
func testChangesAtomic(t *testing.T, s store.Catalog) {
	ctx := t.Context()
	CatalogFixture(t, s, "tax", "a", "web-link", "1")
	CatalogFixture(t, s, "tax", "a", "web-link", "2")
	before, err := s.AuditTrail(ctx, store.AuditFilter{AppID: "a"})
	must(t, err)
	gen, err := s.CatalogGeneration(ctx)
	must(t, err)
	_, err = s.ApplyChanges(ctx, []store.AppChange{change("a", "1", "", "draft", "submitted"), change("a", "2", "", "approved", "retired")})
	wantErr(t, "group with a stale change", err, store.ErrStale)
	v, _ := s.GetVersion(ctx, "a", "1")
	after, _ := s.AuditTrail(ctx, store.AuditFilter{AppID: "a"})
	if v.State != "draft" || len(after) != len(before) {
		t.Fatalf("a failed group changed something: state %s, audit %d -> %d entries", v.State, len(before), len(after))
	}
	if g, _ := s.CatalogGeneration(ctx); g != gen {
		t.Fatalf("a failed group moved the generation %d -> %d", gen, g)
	}
}

// testChangesConcurrent: many callers try the same change at once; exactly one succeeds.
func testChangesConcurrent(t *testing.T, s store.Catalog) {
	ctx := t.Context()
	CatalogFixture(t, s, "tax", "a", "web-link", "1")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.ApplyChanges(ctx, []store.AppChange{change("a", "1", "", "draft", "submitted")})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrStale):
			t.Fatalf("concurrent change: %v", err)
		}
	}
	es, _ := s.AuditTrail(ctx, store.AuditFilter{AppID: "a", Version: "1"})
	if ok != 1 || len(es) != 2 {
		t.Fatalf("%d of %d concurrent changes succeeded, audit has %d entries; want 1 and 2", ok, n, len(es))
	}
}

func testAudit(t *testing.T, s store.Catalog) {
	ctx := t.Context()
	CatalogFixture(t, s, "tax", "a", "web-link", "1")
	CatalogFixture(t, s, "tax", "b", "web-link", "1")
	_, err := s.ApplyChanges(ctx, []store.AppChange{change("a", "1", "", "draft", "submitted"), change("b", "1", "", "draft", "submitted"),
		change("a", "1", "", "submitted", "rejected")})
	must(t, err)
	all, err := s.AuditTrail(ctx, store.AuditFilter{})
	must(t, err)
	got := []string{}
	for i, e := range all {
		got = append(got, e.AppID+":"+e.From+">"+e.To)
		if i > 0 && e.N <= all[i-1].N {
			t.Fatalf("audit not in order: %+v", all)
		}
	}
	want := []string{"a:>draft", "b:>draft", "a:draft>submitted", "b:draft>submitted", "a:submitted>rejected"}
	if !slices.Equal(got, want) {
		t.Fatalf("AuditTrail = %v; want %v", got, want)
	}
	if all[0].Actor != "u-dev" || !all[0].At.Equal(T0) || all[4].Reason != "because" {
		t.Fatalf("creation entry = %+v, rejection = %+v", all[0], all[4])
	}
	a, _ := s.AuditTrail(ctx, store.AuditFilter{AppID: "a", Version: "1"})
	last, _ := s.AuditTrail(ctx, store.AuditFilter{AppID: "a", Limit: 2})
	if len(a) != 3 || len(last) != 2 || last[0].To != "submitted" || last[1].To != "rejected" {
		t.Fatalf("AuditTrail(a) = %+v; latest 2 = %+v", a, last)
	}
}

func testGuides(t *testing.T, s store.Catalog) {
	ctx := t.Context()
	must(t, s.CreateDepartment(ctx, store.Department{ID: "tax", Name: "Tax", CreatedAt: T0}))
	g := store.Guide{ID: "g-tax-cert", DepartmentID: "tax", Title: "完税证明开具", CreatedAt: T0}
	must(t, s.CreateGuide(ctx, g))
	wantErr(t, "duplicate guide", s.CreateGuide(ctx, g), store.ErrExists)
	wantErr(t, "guide of unknown department", s.CreateGuide(ctx, store.Guide{ID: "x", DepartmentID: "nope", Title: "x"}), store.ErrNotFound)
	for i, doc := range []string{`{"title":"v1"}`, `{"title":"v2"}`} {
		v, err := s.AddGuideVersion(ctx, store.GuideVersion{GuideID: g.ID, Doc: json.RawMessage(doc), CreatedAt: T0.Add(time.Duration(i) * time.Hour), CreatedBy: "u-dev"})
		if err != nil || v.Version != int64(i+1) {
			t.Fatalf("AddGuideVersion #%d = %+v, %v", i+1, v, err)
		}
	}
	_, err := s.AddGuideVersion(ctx, store.GuideVersion{GuideID: "nope", Doc: json.RawMessage(`{}`)})
	wantErr(t, "version of unknown guide", err, store.ErrNotFound)
	got, err := s.GetGuide(ctx, g.ID)
	if err != nil || got.Latest != 2 || got.Title != g.Title {
		t.Fatalf("GetGuide = %+v, %v", got, err)
	}
	v, err := s.GetGuideVersion(ctx, g.ID, 1)
	if err != nil || string(v.Doc) != `{"title":"v1"}` || v.CreatedBy != "u-dev" || !v.CreatedAt.Equal(T0) {
		t.Fatalf("GetGuideVersion = %+v, %v", v, err)
	}
	_, err = s.GetGuideVersion(ctx, g.ID, 3)
	wantErr(t, "unknown guide version", err, store.ErrNotFound)
	vs, err := s.ListGuideVersions(ctx, g.ID)
	if err != nil || len(vs) != 2 || vs[1].Version != 2 || vs[1].Doc != nil {
		t.Fatalf("ListGuideVersions = %+v, %v", vs, err)
	}
	_, err = s.ListGuideVersions(ctx, "nope")
	wantErr(t, "versions of unknown guide", err, store.ErrNotFound)
	must(t, s.CreateDepartment(ctx, store.Department{ID: "hr", Name: "HR", CreatedAt: T0}))
	must(t, s.CreateGuide(ctx, store.Guide{ID: "g-hr", DepartmentID: "hr", Title: "社保", CreatedAt: T0}))
	tax, _ := s.ListGuides(ctx, "tax")
	all, _ := s.ListGuides(ctx, "")
	if len(tax) != 1 || len(all) != 2 || all[0].ID != "g-hr" {
		t.Fatalf("ListGuides: tax %+v, all %+v", tax, all)
	}
}
