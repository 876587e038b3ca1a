package store

import (
	"context"
	"time"
)

// Outreach keeps what services that find the citizen (服务找人, hub/outreach) must honour: the
// citizens who opted out of recommendations.
type Outreach interface {
	// SetOptOut records that an account opted out (or back in) at a time.
	SetOptOut(ctx context.Context, account string, out bool, at time.Time) error
	// OptedOut reports whether an account opted out.
	OptedOut(ctx context.Context, account string) (bool, error)
}
