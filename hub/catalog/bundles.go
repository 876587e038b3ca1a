package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/bundle"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta"
)

// BundleType is the media type of a kiosk bundle.
const BundleType = "application/gzip"

// UploadBundle stores a kiosk bundle for a draft version (its department's developer, or admin):
// the archive must be a valid bundle whose manifest names this app and version; its entry,
// services, peripherals and minimum agent version become the version's.
func (c *Catalog) UploadBundle(ctx context.Context, who Actor, appID, version string, archive []byte) (api.AppVersion, error) {
	a, err := c.cfg.Store.GetApp(ctx, appID)
	if err != nil {
		return api.AppVersion{}, err
	}
	if err := who.develops(a.DepartmentID, "app "+appID); err != nil {
		return api.AppVersion{}, err
	}
	if a.Kind != api.KindKioskBundle {
		return api.AppVersion{}, &InvalidError{Fields: []string{fmt.Sprintf("app: %s is a %s, not a kiosk bundle", appID, a.Kind)}}
	}
	v, err := c.cfg.Store.GetVersion(ctx, appID, version)
	if err != nil {
		return api.AppVersion{}, err
	}
	if v.State != api.StateDraft {
		return api.AppVersion{}, fmt.Errorf("%w: %s@%s is %s; only a draft takes a bundle", ErrNotAllowed, appID, version, v.State)
	}
	b, err := bundle.Read(archive)
	if err != nil {
		return api.AppVersion{}, &InvalidError{Fields: []string{"bundle: " + err.Error()}}
	}
	m := b.Manifest
	if m.App != appID || m.Version != version {
		return api.AppVersion{}, &InvalidError{Fields: []string{fmt.Sprintf("bundle: its manifest is of %s@%s, not %s@%s", m.App, m.Version, appID, version)}}
	}
	h := sha256.Sum256(archive)
	sum := hex.EncodeToString(h[:])
	if err := c.cfg.Store.PutBlob(ctx, store.Blob{SHA256: sum, Type: BundleType, Size: int64(len(archive)), Data: archive, CreatedAt: c.now()}); err != nil {
		return api.AppVersion{}, err
	}
	spec := api.AppSpec{Entry: m.Entry, Services: m.Services, Peripherals: m.Peripherals, MinAgent: m.MinAgent,
		Bundle: &api.BundleInfo{SHA256: sum, Size: int64(len(archive)), Target: tufmeta.BundleTarget(appID, version)}}
	if v.Spec, err = json.Marshal(spec); err != nil {
		return api.AppVersion{}, err
	}
	v.UpdatedAt = c.now()
	if err := c.cfg.Store.UpdateVersion(ctx, v, api.StateDraft); err != nil {
		if errors.Is(err, store.ErrStale) {
			return api.AppVersion{}, fmt.Errorf("%w: %w", ErrNotAllowed, err)
		}
		return api.AppVersion{}, err
	}
	c.changed()
	c.log.Info("bundle uploaded", "app", appID, "version", version, "sha256", sum, "bytes", len(archive))
	return apiVersion(v), nil
}

// Bundle returns a version's uploaded bundle (whoever may see the app: the operator who signs it
// checks it first).
func (c *Catalog) Bundle(ctx context.Context, who Actor, appID, version string) ([]byte, error) {
	if _, err := c.app(ctx, who, appID); err != nil {
		return nil, err
	}
	v, err := c.cfg.Store.GetVersion(ctx, appID, version)
	if err != nil {
		return nil, err
	}
	var s api.AppSpec
	if err := json.Unmarshal(v.Spec, &s); err != nil || s.Bundle == nil {
		return nil, fmt.Errorf("%w: %s@%s has no bundle", store.ErrNotFound, appID, version)
	}
	b, err := c.cfg.Store.GetBlob(ctx, s.Bundle.SHA256)
	return b.Data, err
}
