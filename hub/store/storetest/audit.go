package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// RunAudit runs the suite of store.StaffAudit.
func RunAudit(t *testing.T, open func(t *testing.T) store.StaffAudit) {
	suite[store.StaffAudit]{
		{"Chain", testAuditChain},
		{"ConcurrentAppend", testAuditConcurrent},
	}.run(t, open)
}

func auditEntry(actor string, i int) store.StaffAction {
	return store.StaffAction{At: T0.Add(time.Duration(i) * time.Second), Actor: actor, Roles: "fieldops", Action: "POST /devices/{id}/revoke",
		Target: fmt.Sprintf("/api/v1/devices/k%d/revoke", i), Source: "10.0.0.7", Status: 200, Result: "ok"}
}

// oldestFirst lists the whole log, oldest first.
func oldestFirst(t *testing.T, s store.StaffAudit) []store.StaffAction {
	t.Helper()
	es, err := s.ListAudit(t.Context(), store.StaffActionFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(es)
	return es
}

func testAuditChain(t *testing.T, s store.StaffAudit) {
	ctx := t.Context()
	_, err := s.AppendAudit(ctx, store.StaffAction{At: T0})
	wantErr(t, "AppendAudit without an actor", err, store.ErrInvalid)
	var appended []store.StaffAction
	for i, actor := range []string{"li", "wang", "li"} {
		e, err := s.AppendAudit(ctx, auditEntry(actor, i))
		if err != nil {
			t.Fatal(err)
		}
		appended = append(appended, e)
	}
	if appended[0].Prev != "" || appended[1].Prev != appended[0].Hash || appended[2].Prev != appended[1].Hash || appended[0].ID >= appended[1].ID {
		t.Fatalf("chain %+v", appended)
	}
	es := oldestFirst(t, s)
	if !slices.Equal(es, appended) {
		t.Fatalf("listed %+v\nappended %+v", es, appended)
	}
	if err := store.VerifyAudit(es); err != nil {
		t.Fatal(err)
	}
	// A changed entry, or one left out, breaks the chain.
	changed := slices.Clone(es)
	changed[1].Result = "forbidden"
	wantErr(t, "VerifyAudit of a changed entry", store.VerifyAudit(changed), store.ErrInvalid)
	wantErr(t, "VerifyAudit with an entry left out", store.VerifyAudit([]store.StaffAction{es[0], es[2]}), store.ErrInvalid)

	byLi, _ := s.ListAudit(ctx, store.StaffActionFilter{Actor: "li"})
	if len(byLi) != 2 || byLi[0].ID != es[2].ID {
		t.Errorf("by actor: %+v", byLi)
	}
	byTarget, _ := s.ListAudit(ctx, store.StaffActionFilter{Target: "/api/v1/devices/k1/revoke"})
	if len(byTarget) != 1 || byTarget[0].Actor != "wang" {
		t.Errorf("by target: %+v", byTarget)
	}
	page, _ := s.ListAudit(ctx, store.StaffActionFilter{BeforeID: es[2].ID, Limit: 1})
	if len(page) != 1 || page[0].ID != es[1].ID {
		t.Errorf("page before %d: %+v", es[2].ID, page)
	}
}

// testAuditConcurrent: appends at once still make one chain.
func testAuditConcurrent(t *testing.T, s store.StaffAudit) {
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if _, err := s.AppendAudit(t.Context(), auditEntry(fmt.Sprint("u", i), i)); err != nil && !errors.Is(err, t.Context().Err()) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	es := oldestFirst(t, s)
	if len(es) != 16 {
		t.Fatalf("%d entries", len(es))
	}
	if err := store.VerifyAudit(es); err != nil {
		t.Fatal(err)
	}
}
