package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// CreateSilence is the body of POST /api/v1/silences: the alerts (of one rule, or all) of a kiosk,
// or of every kiosk under a region, are not notified for a while (a maintenance window).
type CreateSilence struct {
	DeviceID string `json:"deviceId,omitempty"`
	Region   string `json:"region,omitempty"` // instead of deviceId: a GB/T 2260 prefix of 2, 4 or 6 digits
	Rule     string `json:"rule,omitempty"`   // offline, peripheral-fault, peripheral-degraded; empty: every rule
	For      string `json:"for"`              // a Go duration from 1m to 168h
	Reason   string `json:"reason,omitempty"`
}

// Silence is an alert silence.
type Silence struct {
	ID        int64     `json:"id"`
	DeviceID  string    `json:"deviceId,omitempty"` // the kiosk, or "" for a region's
	Region    string    `json:"region,omitempty"`   // the region prefix, or "" for a kiosk's
	Rule      string    `json:"rule,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	CreatedBy string    `json:"createdBy"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	EndedBy   string    `json:"endedBy,omitempty"` // who ended it early
}

// Silences is the body of GET /api/v1/silences.
type Silences struct {
	Silences []Silence `json:"silences"`
}

// CreateWorkOrder is the body of POST /api/v1/alerts/{id}/workorders: a visit to the alert's
// kiosk, who goes and what to bring.
type CreateWorkOrder struct {
	Assignee string `json:"assignee"`
	Bring    string `json:"bring,omitempty"`
	Note     string `json:"note,omitempty"`
}

// CloseWorkOrder is the body of POST /api/v1/workorders/{id}/close.
type CloseWorkOrder struct {
	Note string `json:"note,omitempty"`
}

// WorkOrder is a visit to a kiosk an alert calls for.
type WorkOrder struct {
	ID        int64     `json:"id"`
	AlertID   int64     `json:"alertId"`
	DeviceID  string    `json:"deviceId"`
	Region    string    `json:"region,omitempty"`
	Assignee  string    `json:"assignee"`
	Bring     string    `json:"bring,omitempty"`
	Note      string    `json:"note,omitempty"`
	State     string    `json:"state"` // open, closed
	CreatedBy string    `json:"createdBy"`
	CreatedAt time.Time `json:"createdAt"`
	ClosedBy  string    `json:"closedBy,omitempty"`
	ClosedAt  time.Time `json:"closedAt,omitzero"`
	Closing   string    `json:"closing,omitempty"` // the note it was closed with
}

// WorkOrders is the body of GET /api/v1/workorders.
type WorkOrders struct {
	WorkOrders []WorkOrder `json:"workOrders"`
}

// CreateSilence silences a kiosk's alerts for a while.
func (c *Client) CreateSilence(ctx context.Context, req CreateSilence) (Silence, error) {
	var out Silence
	return out, c.Do(ctx, http.MethodPost, Prefix+"/silences", req, &out)
}

// ListSilences lists the silences active now on the kiosks in the caller's scope.
func (c *Client) ListSilences(ctx context.Context) ([]Silence, error) {
	var out Silences
	return out.Silences, c.Do(ctx, http.MethodGet, Prefix+"/silences", nil, &out)
}

// EndSilence ends a silence now.
func (c *Client) EndSilence(ctx context.Context, id int64) (Silence, error) {
	var out Silence
	return out, c.Do(ctx, http.MethodPost, fmt.Sprintf("%s/silences/%d/end", Prefix, id), nil, &out)
}

// CreateWorkOrder opens a work order for an alert.
func (c *Client) CreateWorkOrder(ctx context.Context, alertID int64, req CreateWorkOrder) (WorkOrder, error) {
	var out WorkOrder
	return out, c.Do(ctx, http.MethodPost, fmt.Sprintf("%s/alerts/%d/workorders", Prefix, alertID), req, &out)
}

// ListWorkOrders lists the work orders of the kiosks in the caller's scope, newest first: the open
// ones, or all.
func (c *Client) ListWorkOrders(ctx context.Context, all bool) ([]WorkOrder, error) {
	var out WorkOrders
	q := url.Values{}
	if all {
		q.Set("all", "1")
	}
	return out.WorkOrders, c.Do(ctx, http.MethodGet, Prefix+"/workorders?"+q.Encode(), nil, &out)
}

// CloseWorkOrder closes a work order as the caller.
func (c *Client) CloseWorkOrder(ctx context.Context, id int64, note string) (WorkOrder, error) {
	var out WorkOrder
	return out, c.Do(ctx, http.MethodPost, fmt.Sprintf("%s/workorders/%d/close", Prefix, id), CloseWorkOrder{Note: note}, &out)
}
