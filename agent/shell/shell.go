// Package shell is the kiosk shell: the web app a citizen uses at the kiosk (Chromium in kiosk
// mode, docs/shell.md), served by the agent from embedded assets on the local device API's
// loopback listener, so that its pages reach the peripherals through agent/localapi as the
// shell's origin. It offers login by ID card (Login.IdCard), by QR code (the hub's device
// authorization grant, approved on a phone) or as a guest; printing materials, scanning
// documents, case progress and service guides; an elderly mode (关怀模式) with large text, high
// contrast and voice prompts; zh-CN and English.
//
// The citizen's session is bound to the kiosk: after IdleTimeout without activity (a countdown
// shows first) or at logout the agent wipes it: the local API's connections closed, the session's
// spool and scan files deleted, its hub tokens revoked, its memory cleared, the browser sent to
// a page that clears the origin's cookies and storage (Clear-Site-Data), and an attestation
// (session.wiped, counts and digests only) journaled as a signed checkpoint (agent/journal).
// Active and WaitIdle tell the agent when it may restart or update.
package shell

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/journal"
	"github.com/kioskfleet/kioskfleet/agent/shell/qrcode"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

//go:embed assets
var assets embed.FS

// Journal records the shell's transactions (agent/journal).
type Journal interface {
	Append(ctx context.Context, e journal.Entry) (wire.JournalEntry, error)
}

var _ Journal = (*journal.Journal)(nil)

// Config configures a Shell. Dir, Journal and Settings are required.
type Config struct {
	Dir      string // session files (a folder per session, deleted at its wipe); best on tmpfs
	VoiceDir string // voice prompts rendered by espeak-ng, kept across restarts ("": no voice)
	DeviceID string
	Log      *slog.Logger
	Journal  Journal
	Hub      Hub // nil: not enrolled, no login
	// Settings returns the idle timeout and the home URL (the agent's desired-state settings,
	// read at each use so that a change applies at once).
	Settings func() (idle time.Duration, home string)
	// EndConnections closes the local device API's connections (localapi.Server.EndSessions).
	EndConnections func() int
	Catalog        Catalog   // the services on the home screen; nil: BuiltinCatalog
	Materials      Materials // what a citizen may print; nil: BuiltinMaterials
	Cases          Cases     // attaches scans to the citizen's case; nil: not connected yet
	Events         EventSink // the kiosk's events of the unified stream (OutboxEvents); nil: none
	Now            func() time.Time
	Tick           time.Duration // how often the idle timer and hub probe look; default 250 ms
	Espeak         string        // the espeak-ng program; default "espeak-ng" from PATH
}

// Shell serves the kiosk shell. Create it with New, serve it (it is an http.Handler) on the local
// API's listener, and run it with Run.
type Shell struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	voice *voice

	mu      sync.Mutex
	cur     *session
	held    int           // Hold calls not released: no new session
	notify  chan struct{} // closed and replaced at every session change
	wipes   int64
	last    Attestation
	online  bool      // the hub answered the last probe
	checked time.Time // of the last probe
	pending []revocation
	qr      *qrLogin
	binder  CardBinder // nil: no real-name binding (Authenticator)
}

type revocation struct {
	token string
	until time.Time
}

// New checks cfg and returns a Shell.
func New(cfg Config) (*Shell, error) {
	if cfg.Dir == "" || cfg.Journal == nil || cfg.Settings == nil {
		return nil, errors.New("shell: Config needs Dir, Journal and Settings")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 250 * time.Millisecond
	}
	if cfg.Catalog == nil {
		cfg.Catalog = BuiltinCatalog{}
	}
	if cfg.Materials == nil {
		cfg.Materials = BuiltinMaterials()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("shell: %w", err)
	}
	// What a crash left behind belongs to no one now: it goes before anyone uses the kiosk.
	leftovers, _ := os.ReadDir(cfg.Dir)
	for _, d := range leftovers {
		if n, _, _, err := removeAll(filepath.Join(cfg.Dir, d.Name())); err != nil || n > 0 {
			cfg.Log.Warn("shell: files of an interrupted session deleted", "files", n, "err", err)
		}
	}
	s := &Shell{cfg: cfg, log: cfg.Log, notify: make(chan struct{})}
	s.voice = newVoice(cfg.VoiceDir, cfg.Espeak, s.log)
	s.routes()
	return s, nil
}

// Run runs the idle timer, the hub probe and revocation retries, and renders the voice prompts,
// until ctx is done; then it wipes the session in progress.
func (s *Shell) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.voice.render(ctx) })
	wg.Go(func() { s.idleLoop(ctx) })
	wg.Go(func() { s.hubLoop(ctx) })
	if r, ok := s.cfg.Catalog.(interface{ Run(context.Context) }); ok {
		wg.Go(func() { r.Run(ctx) })
	}
	<-ctx.Done()
	s.stopQR()
	wg.Wait()
	s.End(context.WithoutCancel(ctx), "shutdown")
	return nil
}

// hubLoop probes the hub and retries revocations that failed.
func (s *Shell) hubLoop(ctx context.Context) {
	if s.cfg.Hub == nil {
		return
	}
	every := max(s.cfg.Tick*8, time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := s.cfg.Hub.Ping(pctx)
		cancel()
		s.mu.Lock()
		was := s.online
		s.online, s.checked = err == nil, s.cfg.Now()
		retry := s.pending
		s.pending = nil
		s.mu.Unlock()
		if was != (err == nil) {
			s.log.Info("shell: hub reachability changed", "reachable", err == nil, "err", err)
		}
		for _, r := range retry {
			if s.cfg.Now().Before(r.until) {
				s.revoke(ctx, r.token)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// revoke revokes a hub token now, or queues it for the hub loop. It reports whether it is revoked.
func (s *Shell) revoke(ctx context.Context, token string) bool {
	if s.cfg.Hub == nil {
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := s.cfg.Hub.Revoke(rctx, token); err != nil {
		s.log.Warn("shell: hub token not revoked; retried while it lives", "err", err)
		s.mu.Lock()
		s.pending = append(s.pending, revocation{token: token, until: s.cfg.Now().Add(15 * time.Minute)})
		s.mu.Unlock()
		return false
	}
	return true
}

// QR login states, as State.QR says them.
const (
	QRPending  = "pending"
	QRExpired  = "expired"
	QRDenied   = "denied"
	QRTapCard  = "tap-card" // approved for real-name binding: the citizen's card is awaited
	qrApproved = "approved"
)

// qrLogin is a QR login in progress: the device code, polled until approved.
type qrLogin struct {
	cancel context.CancelFunc
	done   chan struct{}
	state  string // a QR login state
	bind   bool   // a QR code for real-name binding
	code   string // the device code, once approved for binding (QRTapCard)
	until  time.Time
}

// startQR asks the hub for a device code and polls it until the citizen approves on a phone
// (the session then begins with acr device), it expires, or stopQR. A QR code for real-name
// binding (bind) begins no session when approved: it waits for the citizen's card
// (QRTapCard), whose login carries the device code and binds the card (Authenticator).
func (s *Shell) startQR(ctx context.Context, bind bool) (DeviceLogin, *qrcode.Code, error) {
	if s.cfg.Hub == nil {
		return DeviceLogin{}, nil, errors.New("this kiosk is not enrolled with a hub")
	}
	s.mu.Lock()
	binder := s.binder
	s.mu.Unlock()
	if bind && binder == nil {
		return DeviceLogin{}, nil, errors.New("this kiosk cannot bind ID cards: it does not log citizens in by card")
	}
	s.stopQR()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	dl, err := s.cfg.Hub.StartDeviceLogin(rctx)
	cancel()
	if err != nil {
		return DeviceLogin{}, nil, err
	}
	link := dl.VerificationURIComplete
	if link == "" {
		link = dl.VerificationURI
	}
	code, err := qrcode.Encode([]byte(link))
	if err != nil {
		return DeviceLogin{}, nil, err
	}
	life := time.Duration(max(dl.ExpiresIn, 1)) * time.Second
	pctx, pcancel := context.WithTimeout(context.Background(), life)
	q := &qrLogin{cancel: pcancel, done: make(chan struct{}), state: QRPending, bind: bind}
	s.mu.Lock()
	s.qr = q
	s.mu.Unlock()
	go func() {
		defer close(q.done)
		defer pcancel()
		s.pollQR(pctx, q, dl, life)
	}()
	return dl, code, nil
}

// takeBinding returns the device code of a QR code approved for real-name binding, once: ""
// when none waits for a card.
func (s *Shell) takeBinding() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.qr
	if q == nil || q.state != QRTapCard || !s.cfg.Now().Before(q.until) {
		return ""
	}
	s.qr = nil
	return q.code
}

func (s *Shell) pollQR(ctx context.Context, q *qrLogin, dl DeviceLogin, life time.Duration) {
	interval := time.Duration(max(dl.Interval, 1)) * time.Second
	set := func(st string) {
		s.mu.Lock()
		q.state = st
		s.mu.Unlock()
	}
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				set(QRExpired)
			}
			return
		case <-time.After(interval):
		}
		tok, err := s.cfg.Hub.PollDeviceLogin(ctx, dl.DeviceCode)
		switch {
		case errors.Is(err, ErrPending):
		case errors.Is(err, ErrSlowDown):
			interval += 5 * time.Second // RFC 8628 §3.5
		case err != nil && ctx.Err() == nil:
			var oe *oauthError
			if errors.As(err, &oe) {
				set(QRDenied)
				s.log.Info("shell: QR login ended", "error", oe.Code)
				return
			}
			s.log.Warn("shell: QR login poll failed; trying again", "err", err)
		case err == nil && q.bind:
			// The session begins with the card's login, which binds the card: this token of the
			// QR code serves nothing.
			s.revoke(context.WithoutCancel(ctx), tok)
			s.mu.Lock()
			q.state, q.code, q.until = QRTapCard, dl.DeviceCode, s.cfg.Now().Add(life)
			s.mu.Unlock()
			s.log.Info("shell: QR code approved for real-name binding; waiting for the card")
			return
		case err == nil:
			set(qrApproved)
			s.mu.Lock()
			if s.qr == q {
				s.qr = nil
			}
			s.mu.Unlock()
			if _, err := s.begin(context.WithoutCancel(ctx), ACRDevice, tok); err != nil {
				s.log.Error("shell: QR login not begun", "err", err)
			} else {
				s.track(ctx, s.currentSession(), "login", "", map[string]string{"acr": ACRDevice})
			}
			return
		}
	}
}

// stopQR ends the QR login in progress, if any, and waits for its poller.
func (s *Shell) stopQR() {
	s.mu.Lock()
	q := s.qr
	s.qr = nil
	s.mu.Unlock()
	if q != nil {
		q.cancel()
		<-q.done
	}
}

// fsys is the embedded assets.
func fsys() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embed pattern guarantees the folder
	}
	return sub
}
