package updates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kioskfleet/kioskfleet/hub/catalog"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta"
)

// Gate keeps a kiosk bundle from being published on the kiosk channel before its target is
// signed: kiosks take only signed bundles, so publishing an unsigned one would publish nothing.
type Gate struct{ Repo *Repository }

var _ catalog.Gate = Gate{}

// Allow implements catalog.Gate.
func (g Gate) Allow(ctx context.Context, app store.App, v store.AppVersion, channel, to string) error {
	if app.Kind != api.KindKioskBundle || channel != api.ChannelKiosk || to != api.StatePublished {
		return nil
	}
	var spec api.AppSpec
	if err := json.Unmarshal(v.Spec, &spec); err != nil || spec.Bundle == nil {
		return fmt.Errorf("%w: %s@%s has no bundle", catalog.ErrNotAllowed, app.ID, v.Version)
	}
	name := tufmeta.BundleTarget(app.ID, v.Version)
	tf, err := g.Repo.Target(ctx, name)
	switch {
	case errors.Is(err, ErrNoRoot):
		return fmt.Errorf("%w: %s is not signed: %w", catalog.ErrNotAllowed, name, err)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: target %s is not signed yet: fleetctl keys sign-bundle %s %s", catalog.ErrNotAllowed, name, app.ID, v.Version)
	case err != nil:
		return err
	case tufmeta.SHA256(tf) != spec.Bundle.SHA256:
		return fmt.Errorf("%w: target %s is signed with sha256 %s, the bundle uploaded has %s", catalog.ErrNotAllowed, name, tufmeta.SHA256(tf), spec.Bundle.SHA256)
	}
	return nil
}
