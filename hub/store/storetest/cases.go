package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// RunCases runs the suite of store.Cases.
func RunCases(t *testing.T, open func(t *testing.T) store.Cases) {
	suite[store.Cases]{
		{"Timeline", testCaseTimeline},
		{"Documents", testCaseDocuments},
		{"EventsAfter", testCaseEventsAfter},
		{"AccountDeletedMerged", testCasesOfDeletedAccount},
	}.run(t, open)
}

// NewCase returns a new case of account, owned by client "dept".
func NewCase(id, ref, account string, at time.Time) store.Case {
	return store.Case{ID: id, ClientID: "dept", Ref: ref, Account: account, Service: "hukou.transfer", Department: "公安局",
		Title: "户口迁移", Channel: store.ChannelKiosk, SiteID: "hall", Status: store.CaseSubmitted, CreatedAt: at, UpdatedAt: at}
}

func testCaseTimeline(t *testing.T, s store.Cases) {
	ctx := t.Context()
	ev, err := s.CreateCase(ctx, NewCase("case-1", "R-1", "c_alice", T0))
	if err != nil || ev.Seq == 0 || ev.Status != store.CaseSubmitted || ev.Account != "c_alice" {
		t.Fatalf("CreateCase = %+v, %v", ev, err)
	}
	_, err = s.CreateCase(ctx, NewCase("case-2", "R-1", "c_bob", T0))
	wantErr(t, "same reference", err, store.ErrExists)
	bad := NewCase("case-3", "R-3", "", T0)
	_, err = s.CreateCase(ctx, bad)
	wantErr(t, "no account", err, store.ErrInvalid)
	steps := []string{store.CaseAccepted, store.CaseInReview, store.CaseMaterialsNeeded, store.CaseMaterialsNeeded,
		store.CaseInReview, store.CaseApproved, store.CaseCertificateReady, store.CaseClosed}
	for i, st := range steps {
		ev, err := s.SetCaseStatus(ctx, "case-1", st, fmt.Sprintf("step %d", i), T0.Add(time.Duration(i+1)*time.Hour))
		if err != nil || ev.Status != st || ev.Note != fmt.Sprintf("step %d", i) {
			t.Fatalf("SetCaseStatus(%s) = %+v, %v", st, ev, err)
		}
	}
	_, err = s.SetCaseStatus(ctx, "case-1", store.CaseInReview, "", T0.Add(time.Hour))
	wantErr(t, "after closed", err, store.ErrBadTransition)
	_, err = s.SetCaseStatus(ctx, "nope", store.CaseAccepted, "", T0)
	wantErr(t, "unknown case", err, store.ErrNotFound)
	c, err := s.GetCase(ctx, "case-1")
	if err != nil || c.Status != store.CaseClosed || len(c.Timeline) != len(steps)+1 || !c.UpdatedAt.Equal(T0.Add(8*time.Hour)) ||
		c.Title != "户口迁移" || c.SiteID != "hall" || !c.CreatedAt.Equal(T0) {
		t.Fatalf("GetCase = %+v, %v", c, err)
	}
	for i := 1; i < len(c.Timeline); i++ {
		if c.Timeline[i].Seq <= c.Timeline[i-1].Seq || c.Timeline[i].Status != steps[i-1] {
			t.Fatalf("timeline %+v", c.Timeline)
		}
	}
	if got, err := s.CaseByRef(ctx, "dept", "R-1"); err != nil || got.ID != "case-1" {
		t.Fatalf("CaseByRef = %+v, %v", got, err)
	}
	_, err = s.CaseByRef(ctx, "other", "R-1")
	wantErr(t, "CaseByRef of another client", err, store.ErrNotFound)
	// Skipping ahead is refused.
	s.CreateCase(ctx, NewCase("case-4", "R-4", "c_alice", T0))
	_, err = s.SetCaseStatus(ctx, "case-4", store.CaseCertificateReady, "", T0)
	wantErr(t, "skip ahead", err, store.ErrBadTransition)
	_, err = s.SetCaseStatus(ctx, "case-4", "teleported", "", T0)
	wantErr(t, "unknown status", err, store.ErrBadTransition)
	list, err := s.ListCases(ctx, "c_alice", 0)
	if err != nil || len(list) != 2 || list[0].ID != "case-1" {
		t.Fatalf("ListCases = %+v, %v", list, err)
	}
	if list, _ := s.ListCases(ctx, "c_nobody", 0); list == nil || len(list) != 0 {
		t.Fatalf("ListCases(nobody) = %#v", list)
	}
}

func testCaseDocuments(t *testing.T, s store.Cases) {
	ctx := t.Context()
	s.CreateCase(ctx, NewCase("case-1", "R-1", "c_alice", T0))
	d := store.CaseDocument{ID: "doc-1", CaseID: "case-1", Kind: store.DocCertificate, Name: "证明.pdf", ContentType: "application/pdf",
		Size: 5, Encrypted: true, Content: []byte("sealed-bytes"), CreatedAt: T0.Add(time.Hour)}
	ev, err := s.AddCaseDocument(ctx, d)
	if err != nil || ev.DocumentID != "doc-1" || ev.Status != store.CaseSubmitted {
		t.Fatalf("AddCaseDocument = %+v, %v", ev, err)
	}
	_, err = s.AddCaseDocument(ctx, d)
	wantErr(t, "same document", err, store.ErrExists)
	d2 := d
	d2.ID, d2.CaseID = "doc-2", "nope"
	_, err = s.AddCaseDocument(ctx, d2)
	wantErr(t, "document of no case", err, store.ErrNotFound)
	got, err := s.CaseDocument(ctx, "case-1", "doc-1")
	if err != nil || string(got.Content) != "sealed-bytes" || !got.Encrypted || got.Size != 5 || got.Name != "证明.pdf" || !got.CreatedAt.Equal(d.CreatedAt) {
		t.Fatalf("CaseDocument = %+v, %v", got, err)
	}
	_, err = s.CaseDocument(ctx, "case-2", "doc-1")
	wantErr(t, "document of another case", err, store.ErrNotFound)
	c, _ := s.GetCase(ctx, "case-1")
	if len(c.Documents) != 1 || c.Documents[0].Content != nil || c.Documents[0].Kind != store.DocCertificate || len(c.Timeline) != 2 {
		t.Fatalf("GetCase documents %+v, timeline %+v", c.Documents, c.Timeline)
	}
}

// testCaseEventsAfter: an account's events come in order, each once, whoever writes them at once.
func testCaseEventsAfter(t *testing.T, s store.Cases) {
	ctx := t.Context()
	const cases, updates = 4, 5
	for i := range cases {
		if _, err := s.CreateCase(ctx, NewCase(fmt.Sprint("case-", i), fmt.Sprint("R-", i), "c_alice", T0)); err != nil {
			t.Fatal(err)
		}
	}
	s.CreateCase(ctx, NewCase("bob-1", "B-1", "c_bob", T0))
	var wg sync.WaitGroup
	for i := range cases {
		wg.Go(func() {
			for j := range updates {
				st := []string{store.CaseAccepted, store.CaseInReview, store.CaseMaterialsNeeded, store.CaseInReview, store.CaseApproved}[j]
				if _, err := s.SetCaseStatus(ctx, fmt.Sprint("case-", i), st, "", T0.Add(time.Minute)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	var all []store.CaseEvent
	after := int64(0)
	for {
		evs, err := s.CaseEventsAfter(ctx, "c_alice", after, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		all = append(all, evs...)
		after = evs[len(evs)-1].Seq
	}
	if len(all) != cases*(updates+1) {
		t.Fatalf("%d events, want %d", len(all), cases*(updates+1))
	}
	if !slices.IsSortedFunc(all, func(a, b store.CaseEvent) int { return int(a.Seq - b.Seq) }) {
		t.Fatalf("events out of order")
	}
	for _, e := range all {
		if e.Account != "c_alice" {
			t.Fatalf("bob's event in alice's stream: %+v", e)
		}
	}
}

// testCasesOfDeletedAccount: a merged account's cases and events move to the other account; a
// deleted account's cases, events and documents are gone, and no one else's.
func testCasesOfDeletedAccount(t *testing.T, s store.Cases) {
	ctx := t.Context()
	for _, c := range []store.Case{NewCase("case-1", "R-1", "c_card", T0), NewCase("case-2", "R-2", "c_bob", T0)} {
		if _, err := s.CreateCase(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddCaseDocument(ctx, store.CaseDocument{ID: "doc-1", CaseID: "case-1", Kind: store.DocCertificate, Name: "a.pdf",
		ContentType: "application/pdf", Size: 1, Content: []byte("x"), CreatedAt: T0}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := s.MoveAccountCases(ctx, "c_card", "c_alice"); err != nil {
			t.Fatal(err)
		}
	}
	if cs, _ := s.ListCases(ctx, "c_card", 10); len(cs) != 0 {
		t.Fatalf("cases of the merged account: %+v", cs)
	}
	if evs, _ := s.CaseEventsAfter(ctx, "c_alice", 0, 10); len(evs) != 2 || evs[0].CaseID != "case-1" || evs[0].Account != "c_alice" {
		t.Fatalf("events of the account merged into: %+v", evs)
	}
	for range 2 {
		if err := s.DeleteAccountCases(ctx, "c_alice"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.GetCase(ctx, "case-1")
	wantErr(t, "deleted case", err, store.ErrNotFound)
	_, err = s.CaseDocument(ctx, "case-1", "doc-1")
	wantErr(t, "deleted document", err, store.ErrNotFound)
	if evs, _ := s.CaseEventsAfter(ctx, "c_alice", 0, 10); len(evs) != 0 {
		t.Fatalf("events of the deleted account: %+v", evs)
	}
	if c, err := s.GetCase(ctx, "case-2"); err != nil || len(c.Timeline) != 1 {
		t.Fatalf("another's case: %+v, %v", c, err)
	}
}
