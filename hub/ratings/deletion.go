package ratings

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"
)

// AccountDeleted keeps a deleted account's ratings in the aggregates but links them to nobody
// (identity.AccountDeleted, PIPL art. 47): their rater becomes a random value, one for all of
// them, so that the distinct citizens stay counted, and no case. It is idempotent.
func (r *Ratings) AccountDeleted(ctx context.Context, account string, _ time.Time) error {
	if err := r.st.ReplaceRater(ctx, account, "deleted-"+rand.Text()); err != nil {
		return fmt.Errorf("ratings: account deleted: %w", err)
	}
	return nil
}
