// Package cases is the hub's case room (办件): department systems create a citizen's case and
// move it along its status timeline (submitted, accepted, in review, materials needed, approved,
// certificate ready, closed), attaching materials and certificates; every channel follows the
// same progress. Documents that hold personal data are sealed at rest (AES-256-GCM under a key
// of their own, derived from the hub's master secret, bound to the case and document IDs) and
// never logged. Every change notifies the citizen's subscribers (Notifier): web and mobile
// stream them (server-sent events), and the kiosk shell, holding the citizen's session token,
// reads the same stream and fetches a certificate to print as PDF. A deleted account's cases are
// deleted here; a merged card-only account's cases move to the account it merged into.
package cases

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/gb11643"
)

var (
	// ErrInvalid wraps a request the room refuses; its message names every field at fault.
	ErrInvalid = errors.New("cases: invalid")
	// ErrNotFound is a case or document that does not exist or is not the caller's.
	ErrNotFound = store.ErrNotFound
)

// Store is the storage the room needs.
type Store interface {
	store.Cases
}

// Config configures the room.
type Config struct {
	Secret      []byte // the hub's master secret (at least 32 bytes): the document key derives from it
	MaxDocument int    // largest document in bytes (default 700 KiB: a base64 body within 1 MiB)
	Now         func() time.Time
	Log         *slog.Logger
}

// Cases is the room.
type Cases struct {
	cfg    Config
	st     Store
	seal   cipher.AEAD
	notify Notifier
}

// New returns the room on st, notifying through n (NewLocal for one hub process).
func New(cfg Config, st Store, n Notifier) (*Cases, error) {
	if len(cfg.Secret) < 32 {
		return nil, errors.New("cases: master secret must have at least 32 bytes")
	}
	key, err := hkdf.Key(sha256.New, cfg.Secret, nil, "kioskfleet case documents", 32)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	if cfg.MaxDocument <= 0 {
		cfg.MaxDocument = 700 << 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Cases{cfg: cfg, st: st, seal: aead, notify: n}, nil
}

// Notifier returns the room's notifier (for streams to subscribe to).
func (cs *Cases) Notifier() Notifier { return cs.notify }

// New is what a department system says of a new case.
type NewCase struct {
	Ref, Service, Department, Title string
	Account                         string // the citizen, from her access token
	Channel, SiteID                 string // where she applied, from that token
}

var (
	refRE     = regexp.MustCompile(`^[A-Za-z0-9._:/-]{1,64}$`)
	serviceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
)

// problems collects field errors.
type problems []string

func (p *problems) check(ok bool, field, format string, a ...any) {
	if !ok {
		*p = append(*p, field+": "+fmt.Sprintf(format, a...))
	}
}

// text checks free text a citizen will read: bounded, UTF-8, and never an ID number.
func (p *problems) text(field, v string, most int, required bool) {
	p.check(!required || v != "", field, "required")
	p.check(utf8.ValidString(v) && utf8.RuneCountInString(v) <= most, field, "at most %d characters of UTF-8", most)
	p.check(!gb11643.Contains(v), field, "holds an ID number: never send one")
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &FieldError{Fields: p}
}

// FieldError is a refused request with every field at fault.
type FieldError struct{ Fields []string }

func (e *FieldError) Error() string { return fmt.Sprintf("%v: %q", ErrInvalid, e.Fields) }
func (e *FieldError) Unwrap() error { return ErrInvalid }

func newID(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Create stores a department's new case for a citizen.
func (cs *Cases) Create(ctx context.Context, clientID string, n NewCase) (store.Case, error) {
	var p problems
	p.check(refRE.MatchString(n.Ref), "ref", "want 1 to 64 of A-Z a-z 0-9 . _ : / -")
	p.check(!gb11643.Contains(n.Ref), "ref", "holds an ID number: never send one")
	p.check(serviceRE.MatchString(n.Service), "service", "want a catalog ID")
	p.text("department", n.Department, 64, true)
	p.text("title", n.Title, 128, true)
	if err := p.err(); err != nil {
		return store.Case{}, err
	}
	now := cs.cfg.Now().UTC()
	c := store.Case{ID: newID("case-"), ClientID: clientID, Ref: n.Ref, Account: n.Account, Service: n.Service,
		Department: n.Department, Title: n.Title, Channel: n.Channel, SiteID: n.SiteID, Status: store.CaseSubmitted,
		CreatedAt: now, UpdatedAt: now}
	ev, err := cs.st.CreateCase(ctx, c)
	if err != nil {
		return store.Case{}, err
	}
	cs.changed(ev)
	return cs.st.GetCase(ctx, c.ID)
}

// owned returns a case if clientID owns it, ErrNotFound otherwise (another department's case
// is none of its business, not even its existence).
func (cs *Cases) owned(ctx context.Context, clientID, id string) (store.Case, error) {
	c, err := cs.st.GetCase(ctx, id)
	if err == nil && c.ClientID != clientID {
		return store.Case{}, fmt.Errorf("%w: case %s", ErrNotFound, id)
	}
	return c, err
}

// Get returns a department's case.
func (cs *Cases) Get(ctx context.Context, clientID, id string) (store.Case, error) {
	return cs.owned(ctx, clientID, id)
}

// Mine returns a citizen's case.
func (cs *Cases) Mine(ctx context.Context, account, id string) (store.Case, error) {
	c, err := cs.st.GetCase(ctx, id)
	if err == nil && c.Account != account {
		return store.Case{}, fmt.Errorf("%w: case %s", ErrNotFound, id)
	}
	return c, err
}

// List returns a citizen's cases.
func (cs *Cases) List(ctx context.Context, account string) ([]store.Case, error) {
	return cs.st.ListCases(ctx, account, 0)
}

// EventsAfter returns a citizen's case events after seq.
func (cs *Cases) EventsAfter(ctx context.Context, account string, after int64) ([]store.CaseEvent, error) {
	return cs.st.CaseEventsAfter(ctx, account, after, 100)
}

// SetStatus moves a department's case along its timeline with a note for the citizen.
func (cs *Cases) SetStatus(ctx context.Context, clientID, id, status, note string) (store.CaseEvent, error) {
	var p problems
	p.check(slices.Contains(store.CaseStatuses, status), "status", "want one of %v", store.CaseStatuses)
	p.text("note", note, 500, false)
	if err := p.err(); err != nil {
		return store.CaseEvent{}, err
	}
	if _, err := cs.owned(ctx, clientID, id); err != nil {
		return store.CaseEvent{}, err
	}
	ev, err := cs.st.SetCaseStatus(ctx, id, status, note, cs.cfg.Now().UTC())
	if err != nil {
		return ev, err
	}
	cs.changed(ev)
	return ev, nil
}

// Document is a document as a department sends it.
type Document struct {
	Kind, Name, ContentType string
	Content                 []byte
	Personal                bool // holds personal data: sealed at rest
}

// AddDocument attaches a material or certificate to a department's case. A certificate is a PDF
// (the kiosk prints it).
func (cs *Cases) AddDocument(ctx context.Context, clientID, id string, d Document) (store.CaseEvent, error) {
	var p problems
	p.check(d.Kind == store.DocMaterial || d.Kind == store.DocCertificate, "kind", "want %s or %s", store.DocMaterial, store.DocCertificate)
	p.text("name", d.Name, 128, true)
	p.check(len(d.ContentType) > 0 && len(d.ContentType) <= 100, "contentType", "required, at most 100 bytes")
	p.check(len(d.Content) > 0 && len(d.Content) <= cs.cfg.MaxDocument, "content", "1 to %d bytes", cs.cfg.MaxDocument)
	if d.Kind == store.DocCertificate {
		p.check(d.ContentType == "application/pdf" && len(d.Content) > 5 && string(d.Content[:5]) == "%PDF-", "content",
			"a certificate is a PDF (application/pdf, starting %%PDF-)")
	}
	if err := p.err(); err != nil {
		return store.CaseEvent{}, err
	}
	if _, err := cs.owned(ctx, clientID, id); err != nil {
		return store.CaseEvent{}, err
	}
	doc := store.CaseDocument{ID: newID("doc-"), CaseID: id, Kind: d.Kind, Name: d.Name, ContentType: d.ContentType,
		Size: int64(len(d.Content)), Encrypted: d.Personal, Content: d.Content, CreatedAt: cs.cfg.Now().UTC()}
	if d.Personal {
		doc.Content = cs.sealDoc(id, doc.ID, d.Content)
	}
	ev, err := cs.st.AddCaseDocument(ctx, doc)
	if err != nil {
		return ev, err
	}
	cs.changed(ev)
	return ev, nil
}

// Document returns a document of a case, opened. The caller has checked the case is the
// caller's (Get or Mine).
func (cs *Cases) Document(ctx context.Context, caseID, docID string) (store.CaseDocument, error) {
	d, err := cs.st.CaseDocument(ctx, caseID, docID)
	if err != nil || !d.Encrypted {
		return d, err
	}
	plain, err := cs.openDoc(caseID, docID, d.Content)
	if err != nil {
		return store.CaseDocument{}, fmt.Errorf("cases: document %s does not open: %w", docID, err)
	}
	d.Content, d.Encrypted = plain, false
	return d, nil
}

func (cs *Cases) sealDoc(caseID, docID string, plain []byte) []byte {
	nonce := make([]byte, cs.seal.NonceSize(), cs.seal.NonceSize()+len(plain)+cs.seal.Overhead())
	rand.Read(nonce)
	return cs.seal.Seal(nonce, nonce, plain, []byte(caseID+"\x00"+docID))
}

func (cs *Cases) openDoc(caseID, docID string, sealed []byte) ([]byte, error) {
	n := cs.seal.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("too short")
	}
	return cs.seal.Open(nil, sealed[:n], sealed[n:], []byte(caseID+"\x00"+docID))
}

// changed tells the case's citizen's subscribers.
func (cs *Cases) changed(ev store.CaseEvent) {
	if cs.notify != nil {
		cs.notify.Notify(ev.Account)
	}
}
