package events

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"
)

// AccountDeleted unlinks a deleted account from its events (identity.AccountDeleted, PIPL
// art. 47): in every analytics domain, its stored events move to a fresh random pseudonym that
// nobody can derive, and its service use is dropped, so that even the pseudonym key and the old
// account ID lead to none of them; the rollups are aggregates and stay. It is idempotent.
func (e *Events) AccountDeleted(ctx context.Context, account string, _ time.Time) error {
	for _, old := range e.ps.all(account) {
		fresh := make([]byte, 16) // the shape of a pseudonym (mac)
		rand.Read(fresh)
		if err := e.st.RekeyPseudonym(ctx, old, base64.RawURLEncoding.EncodeToString(fresh)); err != nil {
			return fmt.Errorf("events: account deleted: %w", err)
		}
	}
	return nil
}
