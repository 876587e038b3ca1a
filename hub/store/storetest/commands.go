package storetest

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// result returns a batch carrying one cmd.result record at seq.
func result(deviceID string, seq uint64, id string, state wire.CommandState, at time.Time) store.Batch {
	b := NewBatch(deviceID, "e", seq, 1, 10)
	b.RecvTS = at
	res := wire.CommandResult{ID: id, State: state, Output: json.RawMessage(`{"ok":true}`)}
	if state == wire.CmdFailed {
		res.Output, res.Error = nil, "paper jam"
	}
	b.Records[0].Kind, b.Records[0].Class, b.Records[0].Body = wire.KindCmdResult, wire.Business, wire.Encode(res)
	b.Records[0].Effect.Command = &res
	return b
}

func newCommand(t *testing.T, s store.Commands, id, device string, created, expires time.Time) {
	t.Helper()
	c := store.Command{ID: id, DeviceID: device, Name: "printer.test", Args: json.RawMessage(`{"copies":1}`),
		State: wire.CmdSucceeded, CreatedAt: created, ExpiresAt: expires}
	if err := s.CreateCommand(t.Context(), c); err != nil {
		t.Fatal(err)
	}
}

func state(t *testing.T, s store.Commands, id string) store.Command {
	t.Helper()
	c, err := s.GetCommand(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testCommandTransitions(t *testing.T, s CommandStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	Enroll(t, s, "sz", "k2")
	exp := T0.Add(time.Hour)
	newCommand(t, s, "c1", "k1", T0, exp)
	c := state(t, s, "c1")
	if c.State != wire.CmdQueued || c.DeviceID != "k1" || c.Name != "printer.test" || string(c.Args) != `{"copies":1}` ||
		!c.CreatedAt.Equal(T0) || !c.ExpiresAt.Equal(exp) || !c.UpdatedAt.Equal(T0) || !c.DeliveredAt.IsZero() {
		t.Fatalf("new command = %+v", c)
	}
	wantErr(t, "duplicate command", s.CreateCommand(ctx, store.Command{ID: "c1", DeviceID: "k1", Name: "x",
		CreatedAt: T0, ExpiresAt: exp}), store.ErrExists)
	wantErr(t, "command for unknown device", s.CreateCommand(ctx, store.Command{ID: "c9", DeviceID: "nope", Name: "x",
		CreatedAt: T0, ExpiresAt: exp}), store.ErrNotFound)
	_, err := s.GetCommand(ctx, "nope")
	wantErr(t, "GetCommand unknown", err, store.ErrNotFound)

	at := T0.Add(time.Minute)
	if err := s.MarkDelivered(ctx, []string{"c1", "unknown"}, at); err != nil {
		t.Fatal(err)
	}
	if c := state(t, s, "c1"); c.State != wire.CmdDelivered || !c.DeliveredAt.Equal(at) {
		t.Fatalf("after MarkDelivered: %+v", c)
	}
	if err := s.MarkDelivered(ctx, []string{"c1"}, at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if c := state(t, s, "c1"); !c.DeliveredAt.Equal(at) {
		t.Fatalf("second MarkDelivered moved delivered-at to %v", c.DeliveredAt)
	}
	// accepted, then succeeded; a later failed is refused (terminal), silently.
	commit(t, s, result("k1", 1, "c1", wire.CmdAccepted, T0.Add(2*time.Minute)))
	if c := state(t, s, "c1"); c.State != wire.CmdAccepted || !c.UpdatedAt.Equal(T0.Add(2*time.Minute)) {
		t.Fatalf("after accepted: %+v", c)
	}
	commit(t, s, result("k1", 2, "c1", wire.CmdSucceeded, T0.Add(3*time.Minute)))
	m := commit(t, s, result("k1", 3, "c1", wire.CmdFailed, T0.Add(4*time.Minute)))
	if m[0].UpTo != 3 {
		t.Fatalf("refused transition must still store the record: watermark %d", m[0].UpTo)
	}
	if c := state(t, s, "c1"); c.State != wire.CmdSucceeded || string(c.Output) != `{"ok":true}` || c.Error != "" ||
		!c.UpdatedAt.Equal(T0.Add(3*time.Minute)) {
		t.Fatalf("after succeeded+failed: %+v", c)
	}
	// A result may skip ahead: queued -> failed directly.
	newCommand(t, s, "c2", "k1", T0.Add(time.Second), exp)
	commit(t, s, result("k1", 4, "c2", wire.CmdFailed, T0.Add(5*time.Minute)))
	if c := state(t, s, "c2"); c.State != wire.CmdFailed || c.Error != "paper jam" {
		t.Fatalf("queued -> failed: %+v", c)
	}
	// The agent may expire a queued command; an accepted one may not expire.
	newCommand(t, s, "c3", "k1", T0.Add(2*time.Second), exp)
	newCommand(t, s, "c4", "k1", T0.Add(3*time.Second), exp)
	commit(t, s, result("k1", 5, "c3", wire.CmdExpired, T0.Add(6*time.Minute)),
		result("k1", 6, "c4", wire.CmdAccepted, T0.Add(6*time.Minute)),
		result("k1", 7, "c4", wire.CmdExpired, T0.Add(6*time.Minute)))
	if c := state(t, s, "c3"); c.State != wire.CmdExpired {
		t.Fatalf("queued -> expired by agent: %s", c.State)
	}
	if c := state(t, s, "c4"); c.State != wire.CmdAccepted {
		t.Fatalf("accepted -> expired must be refused: %s", c.State)
	}
	// A device cannot touch another device's command; an unknown command is ignored.
	newCommand(t, s, "c5", "k1", T0.Add(4*time.Second), exp)
	commit(t, s, result("k2", 1, "c5", wire.CmdSucceeded, T0.Add(7*time.Minute)),
		result("k2", 2, "nope", wire.CmdSucceeded, T0.Add(7*time.Minute)))
	if c := state(t, s, "c5"); c.State != wire.CmdQueued {
		t.Fatalf("another device's result applied: %s", c.State)
	}
	// Newest first.
	cs, err := s.ListCommands(ctx, "k1", 2)
	if err != nil || len(cs) != 2 || cs[0].ID != "c5" || cs[1].ID != "c4" {
		t.Fatalf("ListCommands = %v, %v", ids(cs), err)
	}
	if cs, _ := s.ListCommands(ctx, "k1", 0); len(cs) != 5 {
		t.Fatalf("ListCommands without limit: %v", ids(cs))
	}
}

func ids(cs []store.Command) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func testExpireAndPending(t *testing.T, s CommandStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	Enroll(t, s, "sz", "k2")
	newCommand(t, s, "soon", "k1", T0, T0.Add(time.Minute))
	newCommand(t, s, "deliv", "k1", T0.Add(time.Second), T0.Add(time.Minute))
	newCommand(t, s, "later", "k1", T0.Add(2*time.Second), T0.Add(time.Hour))
	newCommand(t, s, "acc", "k1", T0.Add(3*time.Second), T0.Add(time.Minute))
	newCommand(t, s, "other", "k2", T0.Add(4*time.Second), T0.Add(time.Hour))
	if err := s.MarkDelivered(ctx, []string{"deliv", "acc"}, T0.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	commit(t, s, result("k1", 1, "acc", wire.CmdAccepted, T0.Add(20*time.Second)))

	if got, err := s.DevicesWithQueued(ctx, T0.Add(30*time.Second)); err != nil || !slices.Equal(got, []string{"k1", "k2"}) {
		t.Fatalf("DevicesWithQueued = %v, %v; want [k1 k2]", got, err)
	}
	// At T0+1m only "later" (k1) and "other" (k2) are queued and unexpired; "deliv" was delivered.
	newCommand(t, s, "k2-soon", "k2", T0.Add(5*time.Second), T0.Add(time.Minute))
	if err := s.MarkDelivered(ctx, []string{"later"}, T0.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.DevicesWithQueued(ctx, T0.Add(time.Minute)); !slices.Equal(got, []string{"k2"}) {
		t.Fatalf("DevicesWithQueued after delivery and at expiry = %v; want [k2]", got)
	}

	p, err := s.PendingCommands(ctx, "k1", T0.Add(30*time.Second))
	if err != nil || !slices.Equal(ids(p), []string{"soon", "deliv", "later"}) {
		t.Fatalf("PendingCommands = %v, %v; want queued and delivered, oldest first", ids(p), err)
	}
	// At the expiry instant a command is expired (expiry <= now).
	p, _ = s.PendingCommands(ctx, "k1", T0.Add(time.Minute))
	if !slices.Equal(ids(p), []string{"later"}) {
		t.Fatalf("PendingCommands at expiry = %v", ids(p))
	}
	now := T0.Add(time.Minute)
	exp, err := s.ExpireCommands(ctx, now)
	if err != nil || !slices.Equal(ids(exp), []string{"soon", "deliv", "k2-soon"}) {
		t.Fatalf("ExpireCommands = %v, %v", ids(exp), err)
	}
	for _, c := range exp {
		if c.State != wire.CmdExpired || !c.UpdatedAt.Equal(now) {
			t.Fatalf("returned %s: %+v", c.ID, c)
		}
	}
	for id, want := range map[string]wire.CommandState{"soon": wire.CmdExpired, "deliv": wire.CmdExpired,
		"later": wire.CmdDelivered, "acc": wire.CmdAccepted, "other": wire.CmdQueued} {
		if c := state(t, s, id); c.State != want {
			t.Errorf("%s: %s, want %s", id, c.State, want)
		}
	}
	if exp, _ := s.ExpireCommands(ctx, now); len(exp) != 0 {
		t.Fatalf("second ExpireCommands = %v", ids(exp))
	}
	// An expired command cannot be completed any more.
	commit(t, s, result("k1", 2, "soon", wire.CmdSucceeded, now.Add(time.Second)))
	if c := state(t, s, "soon"); c.State != wire.CmdExpired {
		t.Fatalf("expired -> succeeded applied: %s", c.State)
	}
	if err := s.MarkDelivered(ctx, []string{"soon"}, now); err != nil {
		t.Fatal(err)
	}
	if c := state(t, s, "soon"); c.State != wire.CmdExpired {
		t.Fatalf("MarkDelivered moved an expired command: %s", c.State)
	}
}
