package api

import "time"

// CreateCase is the body of POST /api/v1/cases: a department's system files a new case for the
// citizen whose access token (of any channel, given to the department's system when she applied)
// it passes; the hub files the case under her account and never shows it the account.
type CreateCase struct {
	Ref          string `json:"ref"` // the department's own case number, unique per department client
	Service      string `json:"service"`
	Department   string `json:"department"`
	Title        string `json:"title"`
	CitizenToken string `json:"citizenToken"`
	// Channel where she applied, when her token's client does not tell (web, mobile, miniprogram).
	Channel string `json:"channel,omitempty"`
}

// Case statuses, in order (a case may go back from in_review to materials_needed, and close
// from any status).
const (
	CaseSubmitted        = "submitted"
	CaseAccepted         = "accepted"
	CaseInReview         = "in_review"
	CaseMaterialsNeeded  = "materials_needed"
	CaseApproved         = "approved"
	CaseCertificateReady = "certificate_ready"
	CaseClosed           = "closed"
)

// Case is a citizen's case as the department and the citizen see it.
type Case struct {
	ID         string         `json:"id"`
	Ref        string         `json:"ref"`
	Service    string         `json:"service"`
	Department string         `json:"department"`
	Title      string         `json:"title"`
	Channel    string         `json:"channel"`
	SiteID     string         `json:"siteId,omitempty"`
	Status     string         `json:"status"`
	CreatedAt  time.Time      `json:"createdAt"`
	UpdatedAt  time.Time      `json:"updatedAt"`
	Timeline   []CaseEvent    `json:"timeline,omitempty"`
	Documents  []CaseDocument `json:"documents,omitempty"`
}

// Cases is the body of GET /api/v1/me/cases.
type Cases struct {
	Cases []Case `json:"cases"`
}

// CaseEvent is one change of a case: also what the case stream sends (server-sent events whose
// id is Seq).
type CaseEvent struct {
	Seq        int64     `json:"seq"`
	CaseID     string    `json:"caseId"`
	Status     string    `json:"status"`
	Note       string    `json:"note,omitempty"`
	DocumentID string    `json:"documentId,omitempty"`
	At         time.Time `json:"at"`
}

// CaseDocument describes a material or certificate of a case; its content is at
// .../documents/{id}.
type CaseDocument struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"` // material or certificate
	Name        string    `json:"name"`
	ContentType string    `json:"contentType"`
	Size        int64     `json:"size"`
	CreatedAt   time.Time `json:"createdAt"`
}

// SetCaseStatus is the body of POST /api/v1/cases/{id}/status.
type SetCaseStatus struct {
	Status string `json:"status"`
	Note   string `json:"note,omitempty"` // shown to the citizen
}

// AddCaseDocument is the body of POST /api/v1/cases/{id}/documents. A certificate is a PDF.
type AddCaseDocument struct {
	Kind        string `json:"kind"`
	Name        string `json:"name"`
	ContentType string `json:"contentType"`
	Content     []byte `json:"content"` // base64
	// Personal says the document holds personal data (default true): the hub seals it at rest.
	Personal *bool `json:"personal,omitempty"`
}
