package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// The update repository (hub/updates, docs/catalog.md "Signed bundles"): The Update Framework
// metadata and targets agents fetch under /tuf/, and the endpoints fleetctl keys uses to set the
// offline-signed root and targets metadata.

// TUFPrefix is where the hub serves the repository to agents (no token).
const TUFPrefix = "/tuf/"

// OnlineKey is the body of GET /api/v1/updates/online-key: the hub's own key, which signs
// snapshot and timestamp; a root names it for those roles.
type OnlineKey struct {
	KeyID string          `json:"keyid"`
	Key   json.RawMessage `json:"key"` // a TUF key object
}

// RoleState is the latest version of one role's metadata.
type RoleState struct {
	Version int64     `json:"version"`
	Expires time.Time `json:"expires"`
}

// UpdatesStatus is the body of GET /api/v1/updates/status.
type UpdatesStatus struct {
	Roles   map[string]RoleState `json:"roles"`   // root, targets, snapshot, timestamp (absent: none yet)
	Targets []TargetInfo         `json:"targets"` // of the current targets metadata, by name
	Served  UpdatesServed        `json:"served"`  // by this hub process since it started
}

// TargetInfo is one signed target.
type TargetInfo struct {
	Name    string `json:"name"`
	SHA256  string `json:"sha256"`
	Length  int64  `json:"length"`
	Kind    string `json:"kind"` // bundle or agent
	App     string `json:"app,omitempty"`
	Version string `json:"version"`
}

// UpdatesServed counts what a hub served of the repository.
type UpdatesServed struct {
	TargetRequests int64 `json:"targetRequests"`
	CacheHits      int64 `json:"cacheHits"`
	CacheMisses    int64 `json:"cacheMisses"`
	TargetBytes    int64 `json:"targetBytes"`
	Metadata       int64 `json:"metadataRequests"`
	NotModified    int64 `json:"notModified"`
	RangeRequests  int64 `json:"rangeRequests"`
}

// FileInfo is the answer to POST /api/v1/updates/files.
type FileInfo struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// OnlineKey returns the hub's online key.
func (c *Client) OnlineKey(ctx context.Context) (OnlineKey, error) {
	var out OnlineKey
	return out, c.Do(ctx, http.MethodGet, Prefix+"/updates/online-key", nil, &out)
}

// SetRoot gives the hub the next root metadata (signed offline).
func (c *Client) SetRoot(ctx context.Context, signed []byte) error {
	return c.DoRaw(ctx, http.MethodPut, Prefix+"/updates/root", "application/json", bytes.NewReader(signed), nil)
}

// SignedTargets returns the current targets metadata as signed.
func (c *Client) SignedTargets(ctx context.Context) ([]byte, error) {
	var out json.RawMessage
	return out, c.Do(ctx, http.MethodGet, Prefix+"/updates/targets", nil, &out)
}

// SetTargets gives the hub the next targets metadata (signed offline).
func (c *Client) SetTargets(ctx context.Context, signed []byte) error {
	return c.DoRaw(ctx, http.MethodPut, Prefix+"/updates/targets", "application/json", bytes.NewReader(signed), nil)
}

// UpdatesStatus returns the repository's state.
func (c *Client) UpdatesStatus(ctx context.Context) (UpdatesStatus, error) {
	var out UpdatesStatus
	return out, c.Do(ctx, http.MethodGet, Prefix+"/updates/status", nil, &out)
}

// UploadFile stores a target's bytes (an agent binary) at the hub.
func (c *Client) UploadFile(ctx context.Context, data io.Reader) (FileInfo, error) {
	var out FileInfo
	return out, c.DoRaw(ctx, http.MethodPost, Prefix+"/updates/files", "application/octet-stream", data, &out)
}

// UploadBundle uploads a draft version's kiosk bundle.
func (c *Client) UploadBundle(ctx context.Context, appID, version string, archive io.Reader) (AppVersion, error) {
	var out AppVersion
	return out, c.DoRaw(ctx, http.MethodPut, versionPath(appID, version)+"/bundle", "application/gzip", archive, &out)
}

// Bundle downloads a version's uploaded bundle.
func (c *Client) Bundle(ctx context.Context, appID, version string) ([]byte, error) {
	var out []byte
	return out, c.DoRaw(ctx, http.MethodGet, versionPath(appID, version)+"/bundle", "", nil, &out)
}
