package api

// Recommendation is a service the hub offers a citizen (服务找人), and why: kind life-event
// (rule turning-60, id-card-expiring), case (rule after:SERVICE, a case of SERVICE closed) or
// co-use (rule co-use:SERVICE: Citizens of those who used SERVICE used this one too).
type Recommendation struct {
	Service  string `json:"service"`
	Kind     string `json:"kind"`
	Rule     string `json:"rule"`
	Citizens int64  `json:"citizens,omitempty"`
}

// Recommendations is the body of GET /api/v1/me/recommendations: none when she opted out.
type Recommendations struct {
	OptedOut        bool             `json:"optedOut"`
	Recommendations []Recommendation `json:"recommendations"`
}

// OptOut is the body of PUT /api/v1/me/recommendations/opt-out, and its answer.
type OptOut struct {
	OptedOut bool `json:"optedOut"`
}

// CoUse says that Citizens of those who used From also used To.
type CoUse struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Citizens int64  `json:"citizens"`
}

// CoUses is the body of GET /api/v1/analytics/co-use?service=: pairs of fewer than K citizens
// left out.
type CoUses struct {
	K     int     `json:"k"`
	Pairs []CoUse `json:"pairs"`
}
