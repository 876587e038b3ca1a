package identity

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// AuthenticateClient authenticates a channel's registered client outside the OAuth endpoints
// (the event intake of hub/events): a confidential client by its secret, a public one (a page
// or app that cannot keep a secret) by its ID alone, with an empty secret. Errors wrap
// ErrUnauthorized and never tell an unknown client from a wrong secret.
func (p *Provider) AuthenticateClient(ctx context.Context, id, secret string) (store.Client, error) {
	c, err := p.client(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.Client{}, fmt.Errorf("%w: unknown client or wrong secret", ErrUnauthorized)
		}
		return store.Client{}, err
	}
	if c.Public() && secret == "" {
		return c, nil
	}
	if c.Public() || subtle.ConstantTimeCompare(sha(secret), c.SecretHash) != 1 {
		return store.Client{}, fmt.Errorf("%w: unknown client or wrong secret", ErrUnauthorized)
	}
	return c, nil
}
