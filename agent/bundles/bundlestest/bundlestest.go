// Package bundlestest is for tests of agent/bundles: a TUF repository that signs and serves like
// the hub's (consistent snapshots, online snapshot and timestamp, offline root and targets) with
// knobs to attack the client (replaced bytes, old or expired metadata, other keys, endless
// data); a SessionGuard driven by a script of citizen sessions; and a Recorder that keeps what
// the agent would put in its outbox.
package bundlestest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/kioskfleet/kioskfleet/pkg/bundle"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta/tuftest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Repo is a TUF repository served over HTTP on loopback.
type Repo struct {
	t                        testing.TB
	Keys                     tuftest.Keys
	Online                   ed25519.PrivateKey
	URL                      string // the repository: http://127.0.0.1:PORT/tuf
	TimestampTTL, TargetsTTL time.Duration

	mu         sync.Mutex
	meta       map[string][]byte // "1.root.json", "3.targets.json", ...; timestamp versions as "N.timestamp.json"
	timestamp  int64             // the version served as timestamp.json
	versions   map[string]int64  // latest version of each role
	targets    map[string]*metadata.TargetFiles
	files      map[string][]byte // sha256 -> bytes
	intercept  map[string][]byte // path under /tuf/ -> bytes served instead
	truncateAt map[string]int64  // path -> cut the connection after that many bytes, once

	Bytes  atomic.Int64 // target bytes served
	Ranges atomic.Int64 // requests with a Range header
}

// NewRepo starts a repository with root version 1, no targets, and the online roles signed.
func NewRepo(t testing.TB) *Repo {
	r := &Repo{t: t, Keys: tuftest.NewKeys(t), Online: tuftest.Key(t), TimestampTTL: time.Hour, TargetsTTL: 24 * time.Hour,
		meta: map[string][]byte{}, versions: map[string]int64{}, targets: map[string]*metadata.TargetFiles{},
		files: map[string][]byte{}, intercept: map[string][]byte{}, truncateAt: map[string]int64{}}
	online, _, _ := tufmeta.PublicKey(r.Online)
	r.meta["1.root.json"] = r.Keys.Root(t, 1, time.Now().Add(365*24*time.Hour), online)
	r.versions[tufmeta.Root] = 1
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/tuf"
	r.Publish(nil)
	return r
}

// Root1 is the root a kiosk is installed with.
func (r *Repo) Root1() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.meta["1.root.json"]
}

// AddBundle makes a bundle of app's version (about size bytes), adds it as a target and
// publishes; it returns the archive.
func (r *Repo) AddBundle(m bundle.Manifest, size int) []byte {
	archive := tuftest.Bundle(r.t, m, size)
	r.AddTarget(tufmeta.BundleTarget(m.App, m.Version), archive, tuftest.Target(r.t, archive, m.App, m.Version))
	r.Publish(nil)
	return archive
}

// AddTarget adds a target (not yet published).
func (r *Repo) AddTarget(name string, data []byte, tf *metadata.TargetFiles) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.targets[name] = tf
	r.files[tufmeta.SHA256(tf)] = data
}

// Publish signs the next targets (with signer, or the targets key when nil), snapshot and
// timestamp, and serves them.
func (r *Repo) Publish(signer ed25519.PrivateKey) {
	r.PublishWith(PublishOptions{TargetsKey: signer})
}

// PublishOptions changes how PublishWith signs.
type PublishOptions struct {
	TargetsKey       ed25519.PrivateKey // nil: the repository's
	TimestampExpires time.Time          // zero: now + TimestampTTL
}

// PublishWith signs the next targets, snapshot and timestamp as opts says.
func (r *Repo) PublishWith(opts PublishOptions) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tk := opts.TargetsKey
	if tk == nil {
		tk = r.Keys.TargetsKey
	}
	tv := r.versions[tufmeta.Targets] + 1
	tb, err := tufmeta.NewTargets(tv, time.Now().Add(r.TargetsTTL), r.targets, tk)
	if err != nil {
		r.t.Fatal(err)
	}
	r.put(tufmeta.Targets, tv, tb)
	sv := r.versions[tufmeta.Snapshot] + 1
	s := metadata.Snapshot(time.Now().Add(r.TargetsTTL))
	s.Signed.Version = sv
	s.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metadata.MetaFile(tv)}
	r.put(tufmeta.Snapshot, sv, signed(r.t, s, r.Online))
	exp := opts.TimestampExpires
	if exp.IsZero() {
		exp = time.Now().Add(r.TimestampTTL)
	}
	r.signTimestamp(sv, exp)
}

func (r *Repo) signTimestamp(snapshot int64, expires time.Time) {
	sb := r.meta[strconv.FormatInt(snapshot, 10)+".snapshot.json"]
	tsv := r.versions[tufmeta.Timestamp] + 1
	ts := metadata.Timestamp(expires)
	ts.Signed.Version = tsv
	mf := metadata.MetaFile(snapshot)
	h := sha256sum(sb)
	mf.Length, mf.Hashes = int64(len(sb)), metadata.Hashes{"sha256": h}
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": mf}
	r.put(tufmeta.Timestamp, tsv, signed(r.t, ts, r.Online))
	r.timestamp = tsv
}

func signed[T metadata.Roles](t testing.TB, m *metadata.Metadata[T], k ed25519.PrivateKey) []byte {
	if err := tufmeta.Sign(m, k); err != nil {
		t.Fatal(err)
	}
	b, err := m.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (r *Repo) put(role string, v int64, data []byte) {
	r.meta[strconv.FormatInt(v, 10)+"."+role+".json"] = data
	r.versions[role] = v
}

// ServeTimestamp makes timestamp.json the given (older) version again: a rollback or freeze.
func (r *Repo) ServeTimestamp(version int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timestamp = version
}

// TimestampVersion is the version of timestamp.json served.
func (r *Repo) TimestampVersion() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.timestamp
}

// Metadata returns a signed file as served ("3.snapshot.json").
func (r *Repo) Metadata(name string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.meta[name]
}

// Intercept serves body at path (under /tuf/, e.g. "timestamp.json" or a target's remote
// path) instead of what the repository holds; nil stops.
func (r *Repo) Intercept(path string, body []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if body == nil {
		delete(r.intercept, path)
		return
	}
	r.intercept[path] = body
}

// TruncateOnce cuts the connection of the next request of path after n body bytes.
func (r *Repo) TruncateOnce(path string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.truncateAt[path] = n
}

// TargetPath is where a target's bytes are served (under /tuf/).
func TargetPath(name string, data []byte) string {
	return "targets/" + tufmeta.RemoteName(name, fmt.Sprintf("%x", sha256sum(data)))
}

func (r *Repo) serve(w http.ResponseWriter, req *http.Request) {
	p := strings.TrimPrefix(req.URL.Path, "/tuf/")
	r.mu.Lock()
	body, intercepted := r.intercept[p]
	cut, truncate := r.truncateAt[p]
	delete(r.truncateAt, p)
	if !intercepted {
		switch {
		case p == "timestamp.json":
			body = r.meta[strconv.FormatInt(r.timestamp, 10)+".timestamp.json"]
		case strings.HasPrefix(p, "targets/"):
			i := strings.LastIndex(p, "/")
			sum, _, _ := strings.Cut(p[i+1:], ".")
			body = r.files[sum]
		default:
			body = r.meta[p]
		}
	}
	r.mu.Unlock()
	if body == nil {
		http.NotFound(w, req)
		return
	}
	if req.Header.Get("Range") != "" {
		r.Ranges.Add(1)
	}
	if strings.HasPrefix(p, "targets/") {
		cw := &counting{ResponseWriter: w, n: &r.Bytes, limit: -1}
		if truncate {
			cw.limit = cut
		}
		http.ServeContent(cw, req, "", time.Time{}, bytes.NewReader(body))
		return
	}
	w.Write(body)
}

type counting struct {
	http.ResponseWriter
	n     *atomic.Int64
	limit int64 // -1: none; else hijack and cut after that many bytes
	sent  int64
}

func (c *counting) Write(b []byte) (int, error) {
	if c.limit >= 0 && c.sent+int64(len(b)) > c.limit {
		b = b[:c.limit-c.sent]
		n, _ := c.ResponseWriter.Write(b)
		c.sent += int64(n)
		c.n.Add(int64(n))
		if f, ok := c.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		if hj, ok := c.ResponseWriter.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
			}
		}
		return n, fmt.Errorf("bundlestest: connection cut after %d bytes", c.sent)
	}
	n, err := c.ResponseWriter.Write(b)
	c.sent += int64(n)
	c.n.Add(int64(n))
	return n, err
}

func sha256sum(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

// Guard is a SessionGuard driven by the test: Start and End a citizen session; it records
// whether anything was activated while a session was active (which must never happen).
type Guard struct {
	mu      sync.Mutex
	active  bool
	held    bool
	idle    chan struct{}
	Waits   atomic.Int64 // WaitIdle calls that had to wait for a session to end
	Overlap atomic.Int64 // sessions started while an activation held the kiosk (must be 0: Start waits)
}

// NewGuard returns a Guard with no session.
func NewGuard() *Guard {
	g := &Guard{idle: make(chan struct{})}
	close(g.idle)
	return g
}

// Start begins a citizen session; it waits while an activation holds the kiosk.
func (g *Guard) Start() {
	for {
		g.mu.Lock()
		if !g.held {
			g.active = true
			g.idle = make(chan struct{})
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

// End ends the citizen session.
func (g *Guard) End() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.active {
		g.active = false
		close(g.idle)
	}
}

// Active implements bundles.SessionGuard.
func (g *Guard) Active() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active
}

// WaitIdle implements bundles.SessionGuard.
func (g *Guard) WaitIdle(ctx context.Context) (func(), error) {
	for {
		g.mu.Lock()
		if !g.active && !g.held {
			g.held = true
			g.mu.Unlock()
			return func() { g.mu.Lock(); g.held = false; g.mu.Unlock() }, nil
		}
		idle := g.idle
		g.mu.Unlock()
		g.Waits.Add(1)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-idle:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Held reports whether an activation holds the kiosk now.
func (g *Guard) Held() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

// Recorder keeps the records the agent would append to its outbox.
type Recorder struct {
	mu      sync.Mutex
	Records []Record
}

// Record is one appended record.
type Record struct {
	Kind  string
	Class wire.Class
	Body  []byte
}

// Append implements bundles.Recorder.
func (r *Recorder) Append(_ context.Context, kind string, class wire.Class, body []byte) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Records = append(r.Records, Record{kind, class, bytes.Clone(body)})
	return uint64(len(r.Records)), nil
}

// Events returns the bundle events recorded.
func (r *Recorder) Events(t testing.TB) []wire.BundleEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []wire.BundleEvent
	for _, rec := range r.Records {
		if rec.Kind != wire.KindBundleEvent {
			continue
		}
		var e wire.BundleEvent
		if err := json.Unmarshal(rec.Body, &e); err != nil {
			t.Fatalf("bundle event %s: %v", rec.Body, err)
		}
		out = append(out, e)
	}
	return out
}
