package shell

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/journal"
	"github.com/kioskfleet/kioskfleet/agent/kiosklogin"
	"github.com/kioskfleet/kioskfleet/agent/localapi"
	"github.com/kioskfleet/kioskfleet/drivers/docscan"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Devices wraps the local device API's devices so that every print and scan (by the shell or
// any kiosk app) is a journal entry of the session in progress and counts as its activity. The
// entries hold the document's SHA-256, its material ID when the shell served it, page counts
// and the outcome: nothing of the document itself.
func (s *Shell) Devices(d localapi.Devices) localapi.Devices { return &observed{Devices: d, s: s} }

type observed struct {
	localapi.Devices
	s *Shell
}

func (o *observed) PrintDocument(ctx context.Context, id string, doc devices.Document, progress func(devices.JobProgress)) (devices.JobOutcome, error) {
	o.s.touch()
	pages := 0
	out, err := o.Devices.PrintDocument(ctx, id, doc, func(p devices.JobProgress) {
		o.s.touch() // the citizen waits at the printer
		pages = max(pages, p.Pages)
		if progress != nil {
			progress(p)
		}
	})
	sum := sha256.Sum256(doc.Data)
	digest := hex.EncodeToString(sum[:])
	sid, material := o.s.printed(digest, pages, out.State == devices.JobCompleted)
	o.s.track(ctx, o.s.currentSession(), "print", "print", map[string]string{"outcome": outcomeRefs(id, out, err, nil)["outcome"], "pages": strconv.Itoa(pages)})
	o.s.journal(ctx, journal.Entry{Type: TypePrint, Session: sid,
		Counts: map[string]int64{"bytes": int64(len(doc.Data)), "pages": int64(pages), "millis": out.Millis},
		Refs:   outcomeRefs(id, out, err, map[string]string{"sha256": digest, "document": material})})
	return out, err
}

func (o *observed) PrintReceipt(ctx context.Context, id string, r devices.Receipt) (devices.JobOutcome, error) {
	o.s.touch()
	out, err := o.Devices.PrintReceipt(ctx, id, r)
	sid, _ := o.s.current()
	o.s.journal(ctx, journal.Entry{Type: TypeReceipt, Session: sid,
		Counts: map[string]int64{"lines": int64(len(r.Lines))}, Refs: outcomeRefs(id, out, err, nil)})
	return out, err
}

func (o *observed) ScanDocument(ctx context.Context, id string, opt docscan.Options) ([]docscan.Page, error) {
	o.s.touch()
	pages, err := o.Devices.ScanDocument(ctx, id, opt)
	sid := o.s.scanned(err == nil)
	o.s.track(ctx, o.s.currentSession(), "scan", "scan", map[string]string{"pages": strconv.Itoa(len(pages))})
	outcome := "completed"
	if err != nil {
		outcome = "failed"
	}
	o.s.journal(ctx, journal.Entry{Type: TypeScan, Session: sid, Counts: map[string]int64{"pages": int64(len(pages))},
		Refs: map[string]string{"device": id, "outcome": outcome}})
	return pages, err
}

// outcomeRefs are a job's facts for its journal entry.
func outcomeRefs(device string, out devices.JobOutcome, err error, refs map[string]string) map[string]string {
	if refs == nil {
		refs = map[string]string{}
	}
	refs["device"] = device
	refs["outcome"] = out.State
	if err != nil {
		refs["outcome"] = "error"
	}
	if len(out.Reasons) > 0 {
		refs["reasons"] = clip(strings.Join(out.Reasons, ","), wire.MaxJournalRefBytes)
	}
	for k, v := range refs {
		if v == "" {
			delete(refs, k)
		}
	}
	return refs
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// printed counts a print in the session and returns the session's ID and the material the
// document is (by its digest), if the shell served it.
func (s *Shell) printed(digest string, pages int, done bool) (sid, material string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return "", ""
	}
	if done {
		s.cur.prints++
		s.cur.pages += int64(pages)
	}
	return s.cur.id, s.cur.fetched[digest]
}

func (s *Shell) scanned(ok bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return ""
	}
	if ok {
		s.cur.scans++
	}
	return s.cur.id
}

func (s *Shell) journal(ctx context.Context, e journal.Entry) {
	if _, err := s.cfg.Journal.Append(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("shell: transaction not journaled", "type", e.Type, "err", err)
	}
}

// CardBinder is an optional capability of the Authenticator given to Shell.Authenticator: a
// login that also binds the card to the account that approved this kiosk's QR code of
// deviceCode for real-name binding (hub/identity realname.go).
type CardBinder interface {
	BindIDCard(ctx context.Context, card wire.IDCard, deviceCode string) (kiosklogin.Session, error)
}

// Authenticator wraps the hub login of Login.IdCard: a citizen whose card logs in begins a
// session (acr idcard) whose token is revoked at its wipe. While a QR code approved for
// real-name binding waits for the card (startQR), the card's login carries its device code, once,
// and binds the card, if a is a CardBinder.
func (s *Shell) Authenticator(a localapi.Authenticator) localapi.Authenticator {
	binder, _ := a.(CardBinder)
	s.mu.Lock()
	s.binder = binder
	s.mu.Unlock()
	return localapi.AuthenticatorFunc(func(ctx context.Context, card wire.IDCard) (kiosklogin.Session, error) {
		var sess kiosklogin.Session
		var err error
		if code := s.takeBinding(); code != "" && binder != nil {
			sess, err = binder.BindIDCard(ctx, card, code)
			if err == nil {
				s.log.Info("shell: the citizen's ID card bound to her account")
			}
		} else {
			sess, err = a.LoginIDCard(ctx, card)
		}
		if err != nil {
			return sess, err
		}
		sid, err := s.begin(ctx, ACRIDCard, sess.AccessToken)
		if err != nil {
			return kiosklogin.Session{}, err
		}
		s.mu.Lock()
		cur := s.cur
		if cur != nil && cur.id == sid {
			cur.subject = idTokenSubject(sess.IDToken)
		}
		s.mu.Unlock()
		s.track(ctx, cur, "login", "", map[string]string{"acr": ACRIDCard})
		return sess, nil
	})
}
