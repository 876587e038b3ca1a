package shell

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/journal"
)

// How a citizen session began (its acr, as the hub's token says).
const (
	ACRIDCard = "idcard" // ID card tapped on the kiosk's reader
	ACRDevice = "device" // QR code approved on a phone (RFC 8628)
	ACRGuest  = "guest"  // no login: only what needs none
)

// Journal types of the shell's transactions.
const (
	TypeLogin   = "session.login"
	TypeWiped   = "session.wiped"
	TypePrint   = "print"
	TypeReceipt = "receipt"
	TypeScan    = "scan"
)

// session is the citizen at the kiosk now. Everything of it is in memory or in its folder, and
// goes at the wipe.
type session struct {
	id      string
	acr     string
	started time.Time
	last    time.Time // last activity
	tokens  []string  // hub access tokens, revoked at the wipe
	dir     string    // spool (materials fetched) and scans
	prints  int64
	pages   int64
	scans   int64
	fetched map[string]string // SHA-256 (hex) of a material fetched -> its ID
}

// ErrNoSession is returned for what needs a citizen session when there is none.
var ErrNoSession = errors.New("shell: no citizen session")

// ErrUpdating is returned for a session begun while the agent switches a kiosk app (Hold).
var ErrUpdating = errors.New("shell: the kiosk is updating an app, please try again in a moment")

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// begin starts a session (acr guest, idcard or device) with the hub tokens to revoke at its end.
// A login during a guest session turns it into the citizen's; a login during another citizen's
// session first wipes what that one left (without closing the connections: the login's own
// command runs on one).
func (s *Shell) begin(ctx context.Context, acr string, tokens ...string) (string, error) {
	s.mu.Lock()
	if s.held > 0 {
		s.mu.Unlock()
		for _, t := range tokens {
			s.revoke(ctx, t) // the hub logged the citizen in: that token must not outlive this refusal
		}
		return "", ErrUpdating
	}
	cur := s.cur
	switch {
	case cur != nil && cur.acr != ACRGuest && acr == ACRGuest:
		// a citizen is logged in: "guest" only goes on with that session
		cur.last = s.cfg.Now()
		id := cur.id
		s.mu.Unlock()
		return id, nil
	case cur != nil && cur.acr != ACRGuest:
		s.cur = nil
		s.mu.Unlock()
		s.finish(ctx, cur, "new-login", false)
		s.mu.Lock()
		cur = nil
	}
	now := s.cfg.Now()
	if cur == nil {
		cur = &session{id: newID(), acr: acr, started: now, fetched: map[string]string{}}
		cur.dir = filepath.Join(s.cfg.Dir, "session-"+cur.id)
		s.cur = cur
	}
	cur.acr, cur.last = acr, now
	cur.tokens = append(cur.tokens, tokens...)
	id := cur.id
	s.mu.Unlock()
	s.stopQR()
	if _, err := s.cfg.Journal.Append(ctx, journal.Entry{Type: TypeLogin, Session: id, Refs: map[string]string{"acr": acr}}); err != nil {
		s.log.Error("shell: login not journaled", "err", err)
	}
	s.log.Info("citizen session began", "session", id, "acr", acr)
	s.changed()
	return id, nil
}

// touch records activity in the session (a touch on the screen, a print in progress).
func (s *Shell) touch() {
	s.mu.Lock()
	if s.cur != nil {
		s.cur.last = s.cfg.Now()
	}
	s.mu.Unlock()
}

// current returns the session's ID and acr ("" when none).
func (s *Shell) current() (id, acr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return "", ""
	}
	return s.cur.id, s.cur.acr
}

// Active reports whether a citizen is using the kiosk (a session, guest or logged in): the agent
// must not restart or update now.
func (s *Shell) Active() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil
}

// WaitIdle waits until no citizen session is active, or ctx ends.
func (s *Shell) WaitIdle(ctx context.Context) error {
	for {
		s.mu.Lock()
		active, ch := s.cur != nil, s.notify
		s.mu.Unlock()
		if !active {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Hold waits until no citizen session is active, then holds new sessions off (a login or guest
// start is refused with ErrUpdating, the pages say so) until release is called: the agent
// switches a kiosk app in between, never under a citizen (bundles.SessionGuard).
func (s *Shell) Hold(ctx context.Context) (release func(), err error) {
	for {
		s.mu.Lock()
		active, ch := s.cur != nil, s.notify
		if !active {
			s.held++
			s.mu.Unlock()
			s.changed()
			var once sync.Once
			return func() {
				once.Do(func() {
					s.mu.Lock()
					s.held--
					s.mu.Unlock()
					s.changed()
				})
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// changed wakes WaitIdle.
func (s *Shell) changed() {
	s.mu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
}

// End wipes the current session now (the citizen logged out, or the kiosk went idle).
func (s *Shell) End(ctx context.Context, reason string) (Attestation, bool) {
	s.mu.Lock()
	cur := s.cur
	s.cur = nil
	s.mu.Unlock()
	if cur == nil {
		return Attestation{}, false
	}
	return s.finish(ctx, cur, reason, true), true
}

// Attestation is what a wipe did, as its journal entry (session.wiped) carries it: counts and
// digests, no personal data.
type Attestation struct {
	Session     string `json:"session"`
	Reason      string `json:"reason"` // idle, logout, new-login, shutdown
	ACR         string `json:"acr"`
	Connections int    `json:"connections"` // local API connections closed
	Files       int    `json:"files"`       // spool and scan files deleted
	Bytes       int64  `json:"bytes"`
	FilesSHA256 string `json:"filesSha256"` // of the deleted files' digests, sorted
	Tokens      int    `json:"tokens"`      // hub tokens
	Revoked     int    `json:"revoked"`     // of them revoked at the hub now (the rest are retried)
	Prints      int64  `json:"prints"`
	Pages       int64  `json:"pages"`
	Scans       int64  `json:"scans"`
	Seconds     int64  `json:"seconds"` // the session's length
	JournalIdx  uint64 `json:"journalIndex"`
}

// finish wipes a session that is no longer current: the local API's connections closed (the
// apps reconnect for the next citizen; their commands are canceled and devices released), its
// files deleted, its hub tokens revoked (retried in the background while the hub is
// unreachable), its memory cleared, and the attestation journaled as a signed checkpoint.
func (s *Shell) finish(ctx context.Context, cur *session, reason string, endConnections bool) Attestation {
	a := Attestation{Session: cur.id, Reason: reason, ACR: cur.acr, Tokens: len(cur.tokens), Prints: cur.prints,
		Pages: cur.pages, Scans: cur.scans, Seconds: int64(s.cfg.Now().Sub(cur.started) / time.Second)}
	if endConnections && s.cfg.EndConnections != nil {
		a.Connections = s.cfg.EndConnections()
	}
	var err error
	a.Files, a.Bytes, a.FilesSHA256, err = removeAll(cur.dir)
	if err != nil {
		s.log.Error("shell: session files not all deleted", "session", cur.id, "err", err)
	}
	for _, t := range cur.tokens {
		if s.revoke(ctx, t) {
			a.Revoked++
		}
	}
	clear(cur.tokens)
	cur.tokens, cur.fetched = nil, nil
	e, err := s.cfg.Journal.Append(ctx, journal.Entry{Type: TypeWiped, Session: cur.id, Checkpoint: true,
		Counts: map[string]int64{"connections": int64(a.Connections), "files": int64(a.Files), "bytes": a.Bytes,
			"tokens": int64(a.Tokens), "revoked": int64(a.Revoked), "prints": a.Prints, "pages": a.Pages, "scans": a.Scans, "seconds": a.Seconds},
		Refs: map[string]string{"reason": reason, "acr": a.ACR, "files-sha256": a.FilesSHA256}})
	if err != nil {
		s.log.Error("shell: wipe not journaled", "session", cur.id, "err", err)
	}
	a.JournalIdx = e.Index
	s.mu.Lock()
	s.wipes++
	s.last = a
	s.mu.Unlock()
	s.log.Info("citizen session wiped", "session", cur.id, "reason", reason, "connections", a.Connections,
		"files", a.Files, "tokens", a.Tokens, "revoked", a.Revoked, "journal", a.JournalIdx)
	s.changed()
	return a
}

// removeAll deletes dir and everything in it, overwriting each file with zeros first, and
// returns how many files and bytes it deleted and the SHA-256 of their sorted digests.
func removeAll(dir string) (files int, bytes int64, digest string, err error) {
	var sums []string
	werr := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		sums = append(sums, hex.EncodeToString(sum[:]))
		files++
		bytes += int64(len(b))
		if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			_, _ = f.Write(make([]byte, len(b)))
			_ = f.Sync()
			f.Close()
		}
		clear(b)
		return nil
	})
	if errors.Is(werr, fs.ErrNotExist) {
		werr = nil
	}
	slices.Sort(sums)
	h := sha256.Sum256([]byte(strings.Join(sums, "\n")))
	return files, bytes, hex.EncodeToString(h[:]), errors.Join(werr, os.RemoveAll(dir))
}

// idleLoop wipes the session once it has been idle for the idle timeout.
func (s *Shell) idleLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		idle := s.cur != nil && s.cfg.Now().Sub(s.cur.last) >= s.idleTimeout()
		s.mu.Unlock()
		if idle {
			s.End(ctx, "idle")
		}
	}
}

func (s *Shell) idleTimeout() time.Duration {
	d, _ := s.cfg.Settings()
	if d <= 0 {
		d = 2 * time.Minute
	}
	return d
}

// warnBefore is how long before the wipe the countdown shows.
func warnBefore(idle time.Duration) time.Duration { return min(30*time.Second, idle/2) }
