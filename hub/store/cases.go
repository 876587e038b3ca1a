package store

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Cases keeps citizens' cases (办件): what a department's system created for a citizen's
// application, its status timeline and its documents (materials and certificates). Every change
// is a case event with a hub-wide sequence, so that every channel can follow a citizen's cases
// by reading the events after the last one it saw (CaseEventsAfter); an account's events are
// numbered in the order they commit.
type Cases interface {
	// CreateCase stores a new case with its first event (status submitted); ErrExists if the
	// client has a case with that Ref.
	CreateCase(ctx context.Context, c Case) (CaseEvent, error)
	// GetCase returns a case with its timeline and its documents' descriptions.
	GetCase(ctx context.Context, id string) (Case, error)
	// CaseByRef finds a client's case by its own reference.
	CaseByRef(ctx context.Context, clientID, ref string) (Case, error)
	// SetCaseStatus moves a case to status (ErrBadTransition unless CaseTransitionAllowed) and
	// records the event with its note.
	SetCaseStatus(ctx context.Context, id, status, note string, at time.Time) (CaseEvent, error)
	// AddCaseDocument stores a document of a case and records the event.
	AddCaseDocument(ctx context.Context, d CaseDocument) (CaseEvent, error)
	// CaseDocument returns a document with its content.
	CaseDocument(ctx context.Context, caseID, docID string) (CaseDocument, error)
	// ListCases returns an account's cases, most recently changed first (without timelines).
	ListCases(ctx context.Context, account string, limit int) ([]Case, error)
	// CaseEventsAfter returns an account's case events after seq, in order.
	CaseEventsAfter(ctx context.Context, account string, afterSeq int64, limit int) ([]CaseEvent, error)
	// DeleteAccountCases deletes an account's cases with their timelines and documents; a second
	// call finds nothing to do.
	DeleteAccountCases(ctx context.Context, account string) error
	// MoveAccountCases gives the account into the cases (and their events) of the account from.
	MoveAccountCases(ctx context.Context, from, into string) error
}

// Case statuses, in their usual order.
const (
	CaseSubmitted        = "submitted"
	CaseAccepted         = "accepted"
	CaseInReview         = "in_review"
	CaseMaterialsNeeded  = "materials_needed"
	CaseApproved         = "approved"
	CaseCertificateReady = "certificate_ready"
	CaseClosed           = "closed"
)

// CaseStatuses lists every status.
var CaseStatuses = []string{CaseSubmitted, CaseAccepted, CaseInReview, CaseMaterialsNeeded, CaseApproved,
	CaseCertificateReady, CaseClosed}

var caseNext = map[string][]string{
	CaseSubmitted:        {CaseAccepted, CaseClosed},
	CaseAccepted:         {CaseInReview, CaseMaterialsNeeded, CaseClosed},
	CaseInReview:         {CaseMaterialsNeeded, CaseApproved, CaseClosed},
	CaseMaterialsNeeded:  {CaseInReview, CaseClosed},
	CaseApproved:         {CaseCertificateReady, CaseClosed},
	CaseCertificateReady: {CaseClosed},
}

// CaseTransitionAllowed reports whether a case may move from one status to another: forward
// along the timeline, back and forth between review and materials needed, to closed from any
// open status, and to the same status (a note) while open.
func CaseTransitionAllowed(from, to string) bool {
	if from == CaseClosed {
		return false
	}
	return from == to && slices.Contains(CaseStatuses, to) || slices.Contains(caseNext[from], to)
}

// Case is a citizen's case.
type Case struct {
	ID         string // the hub's
	ClientID   string // the department system's client, which owns it
	Ref        string // the department's own case number
	Account    string // the citizen's account
	Service    string // catalog ID
	Department string
	Title      string
	Channel    string // where it was submitted: kiosk, web, mobile, miniprogram
	SiteID     string // the service hall, for a case submitted at a kiosk
	Status     string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Timeline   []CaseEvent    // GetCase only
	Documents  []CaseDocument // GetCase only, without content
}

// CaseEvent is one change of a case.
type CaseEvent struct {
	Seq        int64
	CaseID     string
	Account    string
	Status     string // the status after the change
	Note       string
	DocumentID string // set when a document was added
	At         time.Time
}

// Document kinds.
const (
	DocMaterial    = "material"
	DocCertificate = "certificate"
)

// CaseDocument is a material or certificate of a case. Content is as stored: sealed by the
// cases room (hub/cases) when Encrypted.
type CaseDocument struct {
	ID          string
	CaseID      string
	Kind        string
	Name        string
	ContentType string
	Size        int64 // of the plain content
	Encrypted   bool
	Content     []byte
	CreatedAt   time.Time
}

// CheckCase reports what CreateCase must refuse (ErrInvalid).
func CheckCase(c Case) error {
	switch {
	case c.ID == "" || c.ClientID == "" || c.Ref == "" || c.Account == "":
		return fmt.Errorf("%w: case needs an id, client, reference and account", ErrInvalid)
	case c.Status != CaseSubmitted:
		return fmt.Errorf("%w: a new case is %s", ErrInvalid, CaseSubmitted)
	case c.CreatedAt.IsZero():
		return fmt.Errorf("%w: case without a time", ErrInvalid)
	}
	return nil
}

// CaseLimit is the limit of a case list: 100 by default, at most 1000.
func CaseLimit(n int) int {
	if n <= 0 {
		return 100
	}
	return min(n, 1000)
}
