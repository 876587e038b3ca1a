package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// Webhook posts each notification to URL as JSON (an api.Alert), retrying with backoff until
// the receiver accepts it (2xx) or MaxAttempts are spent. Every attempt of one notification
// carries the same Idempotency-Key header, "alert-<id>-<state>", so that a receiver that got
// an attempt whose answer was lost counts it once.
type Webhook struct {
	URL         string
	Client      *http.Client  // nil: a client with a 10 s timeout
	MaxAttempts int           // 0: 8
	Backoff     time.Duration // first wait between attempts, doubled each time up to a minute; 0: 1 s
	Log         *slog.Logger
}

var _ Notifier = (*Webhook)(nil)

// Notify delivers a, retrying; it returns the last failure when every attempt failed.
func (w *Webhook) Notify(ctx context.Context, a api.Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("alert-%d-%s", a.ID, a.State)
	attempts, wait := w.MaxAttempts, w.Backoff
	if attempts <= 0 {
		attempts = 8
	}
	if wait <= 0 {
		wait = time.Second
	}
	for i := 1; ; i++ {
		err = w.post(ctx, key, body)
		if err == nil || i == attempts {
			return err
		}
		if w.Log != nil {
			w.Log.Warn("alert webhook failed; retrying", "key", key, "attempt", i, "in", wait, "err", err)
		}
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
		wait = min(2*wait, time.Minute)
	}
}

func (w *Webhook) post(ctx context.Context, key string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	c := w.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("alert webhook: HTTP %d", resp.StatusCode)
	}
	return nil
}

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
