package storetest

import (
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// RunOutreach runs the suite of store.Outreach.
func RunOutreach(t *testing.T, open func(t *testing.T) store.Outreach) {
	suite[store.Outreach]{{"OptOut", testOptOut}}.run(t, open)
}

func testOptOut(t *testing.T, s store.Outreach) {
	ctx := t.Context()
	want := func(account string, out bool) {
		t.Helper()
		if got, err := s.OptedOut(ctx, account); err != nil || got != out {
			t.Fatalf("OptedOut(%s) = %v, %v; want %v", account, got, err, out)
		}
	}
	want("c_a", false)
	for range 2 { // idempotent
		if err := s.SetOptOut(ctx, "c_a", true, T0); err != nil {
			t.Fatal(err)
		}
	}
	want("c_a", true)
	want("c_b", false)
	if err := s.SetOptOut(ctx, "c_a", false, T0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	want("c_a", false)
}
