package bundles

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/kioskfleet/kioskfleet/pkg/tufmeta"
)

// ErrRefused marks what the TUF client refused: metadata that does not verify (not signed by the
// keys root names, an older version than trusted, expired, inconsistent, too large) or a target
// whose bytes are not what its metadata says. A refused target is never installed.
var ErrRefused = errors.New("bundles: refused by the update framework")

// Limits of what the client reads of the repository's metadata (endless data, TUF §5: every
// file has an upper bound before it is verified).
const (
	maxRoot      = 512 << 10
	maxTimestamp = 16 << 10
	maxSnapshot  = 2 << 20
	maxTargets   = 8 << 20
)

// SourceConfig configures a Source.
type SourceConfig struct {
	RepoURL string // the repository: http(s)://hub/tuf
	Dir     string // its state here: trusted metadata (meta/) and the target cache (cache/)
	// Root is the trusted root to start from (the repository's 1.root.json, given to the kiosk
	// at installation). Once a newer root verified, Dir keeps it and Root is not read again.
	Root []byte
	// RootURL, without Root, is where the first root is fetched once and then trusted (trust on
	// first use: the hub the kiosk enrolled with, over the channel enrollment checked). A kiosk
	// installed with its root file is better off.
	RootURL string
	HTTP    *http.Client // nil: a client with a 30 s per-request timeout
	// Discard makes Fetch verify a target's bytes as they come and keep none (load generators:
	// fleetsim's thousand kiosks on one machine).
	Discard bool
	Now     func() time.Time // the reference time for expiry (tests); nil: the clock
}

// Source is the agent's TUF client: it refreshes the repository's metadata (TUF §5.3-5.6) and
// fetches targets into a content-addressed cache, resumably, verifying each against its signed
// length and SHA-256 before anything uses it.
type Source struct {
	cfg     SourceConfig
	fetched atomic.Int64 // target bytes downloaded
	hits    atomic.Int64 // targets found in the cache
}

// NewSource returns a Source; it makes Dir.
func NewSource(cfg SourceConfig) (*Source, error) {
	if cfg.RepoURL == "" || cfg.Dir == "" {
		return nil, errors.New("bundles: SourceConfig needs RepoURL and Dir")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	for _, d := range []string{cfg.metaDir(), cfg.cacheDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("bundles: %w", err)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.metaDir(), "root.json")); err != nil && len(cfg.Root) == 0 && cfg.RootURL == "" {
		return nil, errors.New("bundles: no trusted root: give the repository's 1.root.json")
	}
	return &Source{cfg: cfg}, nil
}

// trustedRoot returns the root to start from: the newest verified one kept in Dir, else Root,
// else the one fetched from RootURL (once).
func (s *Source) trustedRoot(ctx context.Context) ([]byte, error) {
	if b, err := os.ReadFile(filepath.Join(s.cfg.metaDir(), "root.json")); err == nil {
		return b, nil
	}
	if len(s.cfg.Root) > 0 {
		return s.cfg.Root, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.RootURL, nil)
	if err != nil {
		return nil, err
	}
	res, err := s.cfg.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bundles: first root: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bundles: first root %s: HTTP %s (the repository has none yet?)", s.cfg.RootURL, res.Status)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxRoot+1))
	if err != nil || len(b) > maxRoot {
		return nil, fmt.Errorf("%w: first root: unreadable or over %d bytes", ErrRefused, maxRoot)
	}
	return b, nil // updater.New verifies it is signed by its own root keys, and keeps it
}

func (c SourceConfig) metaDir() string  { return filepath.Join(c.Dir, "meta") }
func (c SourceConfig) cacheDir() string { return filepath.Join(c.Dir, "cache") }

// Targets is one verified view of the repository's targets.
type Targets struct {
	Version int64
	files   map[string]*metadata.TargetFiles
}

// Lookup returns a target's signed description and its custom field.
func (t *Targets) Lookup(name string) (*metadata.TargetFiles, tufmeta.Custom, bool) {
	tf, ok := t.files[name]
	if !ok {
		return nil, tufmeta.Custom{}, false
	}
	c, err := tufmeta.CustomOf(tf)
	return tf, c, err == nil
}

// Refresh runs the TUF client workflow against the repository: root (following rotations),
// timestamp, snapshot, targets, each verified against what it trusts, and returns the targets.
// Errors of verification wrap ErrRefused.
func (s *Source) Refresh(ctx context.Context) (*Targets, error) {
	root, err := s.trustedRoot(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := config.New(strings.TrimRight(s.cfg.RepoURL, "/"), root)
	if err != nil {
		return nil, err
	}
	cfg.LocalMetadataDir, cfg.LocalTargetsDir = s.cfg.metaDir(), s.cfg.cacheDir()
	cfg.RootMaxLength, cfg.TimestampMaxLength, cfg.SnapshotMaxLength, cfg.TargetsMaxLength = maxRoot, maxTimestamp, maxSnapshot, maxTargets
	cfg.MaxDelegations = 0
	f := fetcher.NewDefaultFetcher()
	f.SetHTTPClient(ctxClient{ctx: ctx, c: s.cfg.HTTP})
	f.SetHTTPUserAgent("kiosk-agent")
	cfg.Fetcher = f
	up, err := updater.New(cfg) // an Updater refreshes once: a new one each time
	if err != nil {
		return nil, fmt.Errorf("%w: trusted root: %v", ErrRefused, err)
	}
	if s.cfg.Now != nil {
		up.UnsafeSetRefTime(s.cfg.Now())
	}
	if err := up.Refresh(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, classify(err)
	}
	tm := up.GetTrustedMetadataSet().Targets[metadata.TARGETS]
	return &Targets{Version: tm.Signed.Version, files: tm.Signed.Targets}, nil
}

// classify tells a verification failure (ErrRefused) from a network one.
func classify(err error) error {
	var dl *metadata.ErrDownloadHTTP
	var dlm *metadata.ErrDownloadLengthMismatch
	switch {
	case errors.As(err, &dlm):
		return fmt.Errorf("%w: %v", ErrRefused, err) // larger than allowed: endless data
	case errors.As(err, &dl):
		return fmt.Errorf("bundles: repository: %w", err) // not there (yet), or the hub failed: try again later
	case errors.Is(err, &metadata.ErrRepository{}), errors.Is(err, &metadata.ErrLengthOrHashMismatch{}),
		errors.As(err, new(*metadata.ErrValue)), errors.As(err, new(*metadata.ErrType)):
		return fmt.Errorf("%w: %v", ErrRefused, err)
	}
	return fmt.Errorf("bundles: repository: %w", err)
}

// ctxClient makes the TUF fetcher's requests (which carry no context) end with ctx.
type ctxClient struct {
	ctx context.Context
	c   *http.Client
}

func (c ctxClient) Do(r *http.Request) (*http.Response, error) { return c.c.Do(r.WithContext(c.ctx)) }

// CachePath is where a target with that SHA-256 is cached once verified.
func (s *Source) CachePath(sha256hex string) string {
	return filepath.Join(s.cfg.cacheDir(), sha256hex)
}

// Fetch returns the cached path of target name as tf describes it, downloading it if it is not
// cached: resumed from what an interrupted download left (HTTP Range), at most tf.Length bytes
// read, and verified against tf's length and SHA-256 before it enters the cache. hit says it was
// cached already. A target whose bytes do not verify is refused (ErrRefused) and deleted.
func (s *Source) Fetch(ctx context.Context, name string, tf *metadata.TargetFiles) (path string, hit bool, err error) {
	sum := tufmeta.SHA256(tf)
	if len(sum) != 64 {
		return "", false, fmt.Errorf("%w: target %s has no sha256", ErrRefused, name)
	}
	if s.cfg.Discard {
		h := sha256.New()
		if err := s.download(ctx, name, sum, tf.Length, 0, discardFile{}, h); err != nil {
			return "", false, err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != sum {
			return "", false, fmt.Errorf("%w: target %s: sha256 %s, signed %s (arbitrary or altered bytes)", ErrRefused, name, got, sum)
		}
		return "", false, nil
	}
	final := s.CachePath(sum)
	if fi, err := os.Stat(final); err == nil && fi.Size() == tf.Length {
		s.hits.Add(1)
		return final, true, nil
	}
	part := final + ".part"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("bundles: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	have, err := io.Copy(h, f) // what an earlier attempt left: hash it to go on from there
	if err != nil {
		return "", false, fmt.Errorf("bundles: %w", err)
	}
	if have > tf.Length {
		if err := f.Truncate(0); err != nil {
			return "", false, err
		}
		h.Reset()
		have = 0
	}
	if have < tf.Length {
		if err := s.download(ctx, name, sum, tf.Length, have, f, h); err != nil {
			if errors.Is(err, ErrRefused) {
				f.Close()
				os.Remove(part)
			}
			return "", false, err
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		f.Close()
		os.Remove(part)
		return "", false, fmt.Errorf("%w: target %s: sha256 %s, signed %s (arbitrary or altered bytes)", ErrRefused, name, got, sum)
	}
	if err := f.Sync(); err != nil {
		return "", false, err
	}
	if err := os.Rename(part, final); err != nil {
		return "", false, fmt.Errorf("bundles: %w", err)
	}
	return final, false, nil
}

// partFile is where a download goes: the .part file, or nowhere (Discard).
type partFile interface {
	io.Writer
	Seek(offset int64, whence int) (int64, error)
	Truncate(size int64) error
}

type discardFile struct{}

func (discardFile) Write(b []byte) (int, error)    { return len(b), nil }
func (discardFile) Seek(int64, int) (int64, error) { return 0, nil }
func (discardFile) Truncate(int64) error           { return nil }

// download appends the bytes of the target from offset have to f and h, reading at most the
// signed length.
func (s *Source) download(ctx context.Context, name, sum string, length, have int64, f partFile, h hash.Hash) error {
	url := strings.TrimRight(s.cfg.RepoURL, "/") + "/targets/" + tufmeta.RemoteName(name, sum)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kiosk-agent")
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-") // RFC 9110 §14.2
	}
	res, err := s.cfg.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("bundles: fetch %s: %w", name, err)
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusPartialContent && have > 0:
	case res.StatusCode == http.StatusOK:
		if have > 0 { // the server sends it all again: start over
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			if err := f.Truncate(0); err != nil {
				return err
			}
			h.Reset()
			have = 0
		}
	default:
		return fmt.Errorf("bundles: fetch %s: HTTP %s", name, res.Status)
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return err
	}
	// Endless data: never more than the signed length (TUF §5.7.3).
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(res.Body, length-have+1))
	s.fetched.Add(n)
	if err != nil {
		return fmt.Errorf("bundles: fetch %s: %w (resumes from %d bytes)", name, err, have+n)
	}
	if have+n > length {
		return fmt.Errorf("%w: target %s: more than its signed %d bytes (endless data)", ErrRefused, name, length)
	}
	if have+n < length {
		return fmt.Errorf("bundles: fetch %s: %d of %d bytes (resumes from there)", name, have+n, length)
	}
	return nil
}

// Downloaded returns the target bytes downloaded and the targets found cached, since start.
func (s *Source) Downloaded() (bytes, hits int64) { return s.fetched.Load(), s.hits.Load() }
