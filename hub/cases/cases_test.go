package cases

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
)

func newRoom(t *testing.T) (*Cases, *sqlite.Store, *Local) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n := NewLocal()
	cs, err := New(Config{Secret: bytes.Repeat([]byte{2}, 32), Now: func() time.Time { return storetest.T0 }}, st, n)
	if err != nil {
		t.Fatal(err)
	}
	return cs, st, n
}

// TestDocumentsSealed: a personal document is stored sealed, opens only as the document of its
// own case, and a document without personal data is stored as it came.
func TestDocumentsSealed(t *testing.T) {
	cs, st, _ := newRoom(t)
	ctx := t.Context()
	c, err := cs.Create(ctx, "dept", NewCase{Ref: "R1", Service: "svc", Department: "d", Title: "t", Account: "c_a", Channel: "web"})
	if err != nil {
		t.Fatal(err)
	}
	pdf := []byte("%PDF-1.4 secret certificate")
	ev, err := cs.AddDocument(ctx, "dept", c.ID, Document{Kind: store.DocCertificate, Name: "c.pdf", ContentType: "application/pdf", Content: pdf, Personal: true})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := st.CaseDocument(ctx, c.ID, ev.DocumentID)
	if !raw.Encrypted || bytes.Contains(raw.Content, []byte("secret")) {
		t.Fatalf("stored %+v", raw)
	}
	d, err := cs.Document(ctx, c.ID, ev.DocumentID)
	if err != nil || !bytes.Equal(d.Content, pdf) {
		t.Fatalf("Document = %q, %v", d.Content, err)
	}
	if _, err := cs.openDoc("case-other", ev.DocumentID, raw.Content); err == nil {
		t.Fatal("a sealed document opened as another case's")
	}
	ev2, _ := cs.AddDocument(ctx, "dept", c.ID, Document{Kind: store.DocMaterial, Name: "guide.txt", ContentType: "text/plain", Content: []byte("public")})
	if raw, _ := st.CaseDocument(ctx, c.ID, ev2.DocumentID); raw.Encrypted || string(raw.Content) != "public" {
		t.Fatalf("stored %+v", raw)
	}
	if _, err := cs.AddDocument(ctx, "other", c.ID, Document{Kind: store.DocMaterial, Name: "x", ContentType: "text/plain", Content: []byte("x")}); err == nil {
		t.Fatal("another department attached a document")
	}
}

// TestNotify: every change wakes the citizen's subscribers, and only hers.
func TestNotify(t *testing.T) {
	cs, _, n := newRoom(t)
	mine, stop := n.Subscribe("c_a")
	defer stop()
	other, stop2 := n.Subscribe("c_b")
	defer stop2()
	c, err := cs.Create(t.Context(), "dept", NewCase{Ref: "R1", Service: "svc", Department: "d", Title: "t", Account: "c_a", Channel: "web"})
	if err != nil {
		t.Fatal(err)
	}
	<-mine
	cs.SetStatus(t.Context(), "dept", c.ID, store.CaseAccepted, "")
	<-mine
	select {
	case <-other:
		t.Fatal("another citizen notified")
	default:
	}
	if n.Subscribers() != 2 {
		t.Fatalf("%d subscribers", n.Subscribers())
	}
}
