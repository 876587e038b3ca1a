package cases

import (
	"context"
	"fmt"
	"time"
)

// AccountDeleted deletes the hub's copies of a deleted account's cases, their timelines and
// documents (identity.AccountDeleted, PIPL art. 47); the department systems keep their own
// records under their own law. It is idempotent.
func (c *Cases) AccountDeleted(ctx context.Context, account string, _ time.Time) error {
	if err := c.st.DeleteAccountCases(ctx, account); err != nil {
		return fmt.Errorf("cases: account deleted: %w", err)
	}
	return nil
}

// AccountMerged gives the account a card-only account was merged into its cases
// (identity.AccountMerged), before that account's deletion. It is idempotent.
func (c *Cases) AccountMerged(ctx context.Context, from, into string, _ time.Time) error {
	if err := c.st.MoveAccountCases(ctx, from, into); err != nil {
		return fmt.Errorf("cases: account merged: %w", err)
	}
	return nil
}
