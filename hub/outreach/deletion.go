package outreach

import (
	"context"
	"fmt"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// OptOuts is the room's part in an account's deletion (identity.AccountDeleted, PIPL art. 47):
// it forgets the account's opt-out. It stands apart from Outreach, which needs the identity
// provider that is told of deletions.
type OptOuts struct{ Store store.Outreach }

// AccountDeleted forgets the account's opt-out. It is idempotent.
func (o OptOuts) AccountDeleted(ctx context.Context, account string, at time.Time) error {
	if err := o.Store.SetOptOut(ctx, account, false, at); err != nil {
		return fmt.Errorf("outreach: account deleted: %w", err)
	}
	return nil
}
