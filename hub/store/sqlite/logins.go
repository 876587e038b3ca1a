package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// logins keeps the state of logins in progress in memory rather than in the database: the
// authorization requests of the code flow with their codes (AuthRequests), and one-time
// ceremonies (Ceremonies: a passkey challenge, an upstream login's state, an approval to bind a
// card). A passkey login wrote them six times of its nine (request, ceremony put and taken,
// request bound to the user, code, code consumed); each write was a transaction with an fsync.
//
// Why this loses nothing that was promised:
//   - They live minutes (the provider's CodeTTL and ceremony lifetime, 5 min by default) and
//     belong to a login the citizen is doing right now. If the hub stops, those logins fail as
//     if they had expired: the citizen presses the button again, the client starts over. What a
//     login leaves behind (the browser session, the tokens, the passkey's signature counter)
//     stays durable and group-committed (groupcommit.go).
//   - One-time use stays one-time: a code or ceremony is taken under the mutex; after a restart
//     none from before exists, so none can be redeemed (it fails closed). What is lost is the
//     reuse detection of a code redeemed before a restart and presented again after it (RFC 6749
//     §4.1.2's SHOULD revoke): it is refused as unknown, its tokens are not revoked.
//   - Only where the architecture allows: this store is one process's (pkg/sqlitex: one writer,
//     the hub that opened it). Replicas share state through PostgreSQL, whose store keeps these
//     in tables, since a replica may get the token request for another's code.
//
// Memory is bounded: at most maxLogins of each; beyond, new ones are refused (ErrLimited) until
// Purge removes expired ones (the provider purges every few minutes).
type logins struct {
	mu         sync.Mutex
	reqs       map[string]*memAuthReq // by ID
	byCode     map[string]string      // code hash -> request ID
	ceremonies map[string]store.Ceremony
}

const maxLogins = 200_000

type memAuthReq struct {
	doc       []byte // the request as JSON, so that callers never share its slices
	code      []byte
	consumed  bool
	expiresAt time.Time
}

func newLogins() *logins {
	return &logins{reqs: map[string]*memAuthReq{}, byCode: map[string]string{}, ceremonies: map[string]store.Ceremony{}}
}

func (m *memAuthReq) request() (store.AuthRequest, error) {
	var a store.AuthRequest
	if err := json.Unmarshal(m.doc, &a); err != nil {
		return a, fmt.Errorf("auth request: %w", err)
	}
	a.CodeHash, a.Consumed = m.code, m.consumed
	return a, nil
}

func (s *identityStore) SaveAuthRequest(_ context.Context, a store.AuthRequest) error {
	doc, err := json.Marshal(a)
	if err != nil {
		return err
	}
	l := s.logins
	l.mu.Lock()
	defer l.mu.Unlock()
	old, ok := l.reqs[a.ID]
	switch {
	case ok && old.consumed:
		return nil // a consumed request is kept as it was, to detect its code's reuse
	case !ok && len(l.reqs) >= maxLogins:
		return fmt.Errorf("save auth request: %d logins in progress: %w", len(l.reqs), store.ErrLimited)
	}
	if ok && len(old.code) > 0 {
		delete(l.byCode, string(old.code))
	}
	m := &memAuthReq{doc: doc, code: a.CodeHash, consumed: a.Consumed, expiresAt: a.ExpiresAt}
	if len(m.code) > 0 {
		l.byCode[string(m.code)] = a.ID
	}
	l.reqs[a.ID] = m
	return nil
}

func (s *identityStore) GetAuthRequest(_ context.Context, id string) (store.AuthRequest, error) {
	l := s.logins
	l.mu.Lock()
	m, ok := l.reqs[id]
	l.mu.Unlock()
	if !ok {
		return store.AuthRequest{}, fmt.Errorf("get auth request: %w", store.ErrNotFound)
	}
	return m.request()
}

func (s *identityStore) ConsumeCode(_ context.Context, codeHash []byte) (store.AuthRequest, error) {
	l := s.logins
	l.mu.Lock()
	m, ok := l.reqs[l.byCode[string(codeHash)]]
	reused := ok && m.consumed
	if ok {
		m.consumed = true
	}
	l.mu.Unlock()
	if !ok {
		return store.AuthRequest{}, fmt.Errorf("consume code: %w", store.ErrNotFound)
	}
	a, err := m.request()
	if err == nil && reused {
		err = store.ErrCodeReused
	}
	return a, err
}

func (s *identityStore) DeleteAuthRequest(_ context.Context, id string) error {
	l := s.logins
	l.mu.Lock()
	defer l.mu.Unlock()
	if m, ok := l.reqs[id]; ok && !m.consumed {
		delete(l.reqs, id)
		delete(l.byCode, string(m.code))
	}
	return nil
}

func (s *identityStore) PutCeremony(_ context.Context, c store.Ceremony) error {
	l := s.logins
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.ceremonies[c.ID]; ok {
		return fmt.Errorf("put ceremony: %w", store.ErrExists)
	}
	if len(l.ceremonies) >= maxLogins {
		return fmt.Errorf("put ceremony: %d in progress: %w", len(l.ceremonies), store.ErrLimited)
	}
	c.Doc = append([]byte(nil), c.Doc...)
	l.ceremonies[c.ID] = c
	return nil
}

func (s *identityStore) TakeCeremony(_ context.Context, id, kind string, now time.Time) (store.Ceremony, error) {
	l := s.logins
	l.mu.Lock()
	c, ok := l.ceremonies[id]
	if ok && c.Kind == kind {
		delete(l.ceremonies, id)
	}
	l.mu.Unlock()
	switch {
	case !ok || c.Kind != kind:
		return store.Ceremony{}, fmt.Errorf("take ceremony: %w", store.ErrNotFound)
	case !now.Before(c.ExpiresAt):
		return store.Ceremony{}, fmt.Errorf("take ceremony: expired: %w", store.ErrNotFound)
	}
	return c, nil
}

// purge removes requests and ceremonies that expired before now.
func (l *logins) purge(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, m := range l.reqs {
		if m.expiresAt.Before(now) {
			delete(l.reqs, id)
			delete(l.byCode, string(m.code))
		}
	}
	for id, c := range l.ceremonies {
		if c.ExpiresAt.Before(now) {
			delete(l.ceremonies, id)
		}
	}
}
