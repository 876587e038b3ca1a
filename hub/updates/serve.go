package updates

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta"
)

// Prefix is where the repository is served.
const Prefix = "/tuf/"

// Handler serves the repository under Prefix, as a TUF client with consistent snapshots fetches
// it (TUF §5): VERSION.root.json, timestamp.json, VERSION.snapshot.json, VERSION.targets.json,
// and targets/DIR/SHA256.NAME — only targets of the current targets metadata, from memory when
// they were served recently, with Range requests for resumed downloads. Versioned files and
// targets never change and may be cached for good; timestamp.json must be asked for again.
func (r *Repository) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(req.URL.Path, Prefix)
		if t, ok := strings.CutPrefix(name, "targets/"); ok {
			r.serveTarget(w, req, t)
			return
		}
		r.serveMetadata(w, req, name)
	})
}

func (r *Repository) serveMetadata(w http.ResponseWriter, req *http.Request, name string) {
	r.counts.metadata.Add(1)
	ctx := req.Context()
	var m store.TUFMetadata
	var err error
	cache := "public, max-age=31536000, immutable"
	switch {
	case name == "timestamp.json" || name == "root.json":
		m, err = r.cfg.Store.LatestMetadata(ctx, strings.TrimSuffix(name, ".json"))
		cache = "no-cache"
	default:
		v, role, ok := strings.Cut(strings.TrimSuffix(name, ".json"), ".")
		n, perr := strconv.ParseInt(v, 10, 64)
		if !ok || perr != nil || n < 1 || !strings.HasSuffix(name, ".json") || (role != tufmeta.Root && role != tufmeta.Snapshot && role != tufmeta.Targets) {
			http.NotFound(w, req)
			return
		}
		m, err = r.cfg.Store.GetMetadata(ctx, role, n)
	}
	if errors.Is(err, store.ErrNotFound) {
		http.NotFound(w, req)
		return
	}
	if err != nil {
		r.log.Error("update repository: metadata", "name", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", cache)
	w.Header().Set("ETag", `"`+m.Role+"-"+strconv.FormatInt(m.Version, 10)+`"`)
	r.serveBytes(w, req, m.Data)
}

// serveTarget serves DIR/SHA256.NAME if the current targets metadata signs DIR/NAME with that
// hash.
func (r *Repository) serveTarget(w http.ResponseWriter, req *http.Request, remote string) {
	r.counts.targets.Add(1)
	dir, base := path.Split(remote)
	sum, rest, ok := strings.Cut(base, ".")
	if !ok || len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		http.NotFound(w, req)
		return
	}
	signed, err := r.signed(req.Context())
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, ErrNoRoot) {
		r.log.Error("update repository: targets", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if signed == nil || signed.hashes[dir+rest] != sum {
		http.NotFound(w, req)
		return
	}
	data, hit, err := r.cache.get(req.Context(), sum, func(ctx context.Context) ([]byte, error) {
		b, err := r.cfg.Store.GetBlob(ctx, sum)
		return b.Data, err
	})
	if err != nil {
		r.log.Error("update repository: target", "name", remote, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if hit {
		r.counts.hits.Add(1)
	} else {
		r.counts.misses.Add(1)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("ETag", `"`+sum+`"`)
	r.serveBytes(w, req, data)
}

// serveBytes serves data with conditional and Range requests (http.ServeContent), counting.
func (r *Repository) serveBytes(w http.ResponseWriter, req *http.Request, data []byte) {
	if req.Header.Get("Range") != "" {
		r.counts.ranges.Add(1)
	}
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, req, "", time.Time{}, bytes.NewReader(data))
	if cw.status == http.StatusNotModified {
		r.counts.notModified.Add(1)
	}
	if strings.HasPrefix(req.URL.Path, Prefix+"targets/") {
		r.counts.bytes.Add(cw.n)
	}
}

type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(s int) { c.status = s; c.ResponseWriter.WriteHeader(s) }
func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

// signedTargets is the current targets metadata as the handler needs it.
type signedTargets struct {
	version int64
	hashes  map[string]string // target name -> sha256
}

// signed returns the current targets' hashes, parsing the metadata only when its version changed.
func (r *Repository) signed(ctx context.Context) (*signedTargets, error) {
	m, err := r.cfg.Store.LatestMetadata(ctx, tufmeta.Targets)
	if err != nil {
		return nil, err
	}
	if s := r.targetsView.Load(); s != nil && s.version == m.Version {
		return s, nil
	}
	t, err := metadata.Targets().FromBytes(m.Data)
	if err != nil {
		return nil, err
	}
	s := &signedTargets{version: m.Version, hashes: map[string]string{}}
	for name, tf := range t.Signed.Targets {
		s.hashes[name] = tufmeta.SHA256(tf)
	}
	r.targetsView.Store(s)
	return s, nil
}

// blobCache keeps recently served targets in memory, least recently used out first, up to a
// number of bytes; concurrent misses of one target read it from the store once.
type blobCache struct {
	mu       sync.Mutex
	max, n   int64
	lru      *list.List // of *cached, front most recent
	byHash   map[string]*list.Element
	inflight map[string]*loading
}

type cached struct {
	sum  string
	data []byte
}

type loading struct {
	done chan struct{}
	data []byte
	err  error
}

func newBlobCache(max int64) *blobCache {
	return &blobCache{max: max, lru: list.New(), byHash: map[string]*list.Element{}, inflight: map[string]*loading{}}
}

// get returns the bytes of sum, from memory (hit) or through load.
func (c *blobCache) get(ctx context.Context, sum string, load func(context.Context) ([]byte, error)) ([]byte, bool, error) {
	c.mu.Lock()
	if e, ok := c.byHash[sum]; ok {
		c.lru.MoveToFront(e)
		c.mu.Unlock()
		return e.Value.(*cached).data, true, nil
	}
	if l, ok := c.inflight[sum]; ok {
		c.mu.Unlock()
		select {
		case <-l.done:
			return l.data, true, l.err
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	l := &loading{done: make(chan struct{})}
	c.inflight[sum] = l
	c.mu.Unlock()

	l.data, l.err = load(context.WithoutCancel(ctx))
	c.mu.Lock()
	delete(c.inflight, sum)
	if l.err == nil && int64(len(l.data)) <= c.max {
		c.byHash[sum] = c.lru.PushFront(&cached{sum: sum, data: l.data})
		c.n += int64(len(l.data))
		for c.n > c.max {
			old := c.lru.Remove(c.lru.Back()).(*cached)
			delete(c.byHash, old.sum)
			c.n -= int64(len(old.data))
		}
	}
	c.mu.Unlock()
	close(l.done)
	return l.data, false, l.err
}
