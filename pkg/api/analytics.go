package api

import "time"

// Every analytics answer leaves out the cells of fewer than K distinct citizens (K is at least
// 10), in JSON and in CSV (?format=csv) alike.

// HeatCell is one group of a heat query: the dimensions not grouped by are empty.
type HeatCell struct {
	Service  string     `json:"service,omitempty"`
	Channel  string     `json:"channel,omitempty"`
	Region   string     `json:"region,omitempty"`
	Hour     *time.Time `json:"hour,omitempty"`
	Events   int64      `json:"events"`
	Citizens int64      `json:"citizens"`
}

// Heat is the body of GET /api/v1/analytics/heat?from=&to=&service=&channel=&region=&by=.
type Heat struct {
	From  time.Time  `json:"from"`
	To    time.Time  `json:"to"`
	By    []string   `json:"by"`
	K     int        `json:"k"`
	Cells []HeatCell `json:"cells"`
}

// FunnelStep is the distinct citizens of a service at one stage (view, start, submit, complete).
type FunnelStep struct {
	Service  string `json:"service"`
	Stage    string `json:"stage"`
	Citizens int64  `json:"citizens"`
}

// Funnel is the body of GET /api/v1/analytics/funnel?from=&to=&service=&channel=.
type Funnel struct {
	From  time.Time    `json:"from"`
	To    time.Time    `json:"to"`
	K     int          `json:"k"`
	Steps []FunnelStep `json:"steps"`
}

// SearchMiss is a search (normalized) that found nothing.
type SearchMiss struct {
	Query    string `json:"query"`
	Searches int64  `json:"searches"`
	Citizens int64  `json:"citizens"`
}

// SearchMisses is the body of GET /api/v1/analytics/search-misses?from=&to=.
type SearchMisses struct {
	From   time.Time    `json:"from"`
	To     time.Time    `json:"to"`
	K      int          `json:"k"`
	Misses []SearchMiss `json:"misses"`
}
