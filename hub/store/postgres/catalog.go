package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// bumpGeneration is run by every transaction that changes the catalog. Its row lock also
// serialises catalog changes across replicas, which are rare.
const bumpGeneration = `UPDATE catalog_generation SET gen = gen + 1 WHERE one = 1`

// CreateDepartment stores a department.
func (s *Store) CreateDepartment(ctx context.Context, d store.Department) error {
	if d.ID == "" || d.Name == "" {
		return invalid("department needs an id and a name")
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO catalog_departments (id, name, created_at) VALUES ($1, $2, $3)`, d.ID, d.Name, ts(d.CreatedAt))
		if err != nil {
			return exists(err, "department", d.ID)
		}
		_, err = tx.Exec(ctx, bumpGeneration)
		return err
	})
}

// GetDepartment returns a department.
func (s *Store) GetDepartment(ctx context.Context, id string) (store.Department, error) {
	d, err := sqlrow.Department(s.pool.QueryRow(ctx, `SELECT `+sqlrow.DepartmentCols+` FROM catalog_departments WHERE id = $1`, id))
	if err != nil {
		return d, notFound(err, "department", id)
	}
	return d, nil
}

// ListDepartments lists departments in ID order.
func (s *Store) ListDepartments(ctx context.Context) ([]store.Department, error) {
	return queryAll(ctx, s.pool, sqlrow.Department, `SELECT `+sqlrow.DepartmentCols+` FROM catalog_departments ORDER BY id`)
}

// CreateApp stores an app.
func (s *Store) CreateApp(ctx context.Context, a store.App) error {
	if a.ID == "" || a.DepartmentID == "" || a.Kind == "" || a.Name == "" {
		return invalid("app needs an id, a department, a kind and a name")
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO catalog_apps (id, department_id, kind, name, description, created_at, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, a.ID, a.DepartmentID, a.Kind, a.Name, a.Description, ts(a.CreatedAt), a.CreatedBy)
		if sqlState(err) == foreignKeyViolation {
			return fmt.Errorf("%w: department %s", store.ErrNotFound, a.DepartmentID)
		}
		if err != nil {
			return exists(err, "app", a.ID)
		}
		_, err = tx.Exec(ctx, bumpGeneration)
		return err
	})
}

// GetApp returns an app.
func (s *Store) GetApp(ctx context.Context, id string) (store.App, error) {
	a, err := sqlrow.App(s.pool.QueryRow(ctx, `SELECT `+sqlrow.AppCols+` FROM catalog_apps WHERE id = $1`, id))
	if err != nil {
		return a, notFound(err, "app", id)
	}
	return a, nil
}

// ListApps lists apps in ID order.
func (s *Store) ListApps(ctx context.Context, f store.AppFilter) ([]store.App, error) {
	q, args := sqlrow.Where(`SELECT `+sqlrow.AppCols+` FROM catalog_apps`, "$", map[string]string{"department_id": f.DepartmentID, "kind": f.Kind})
	return queryAll(ctx, s.pool, sqlrow.App, q+` ORDER BY id`, args...)
}

// CreateVersion stores a new version of an app with its audit entry.
func (s *Store) CreateVersion(ctx context.Context, v store.AppVersion, e store.AuditEntry) error {
	if v.AppID == "" || v.Version == "" || v.State == "" {
		return invalid("version needs an app, a version and a state")
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		// The generation's row lock first: it orders concurrent creations of an app's versions.
		if _, err := tx.Exec(ctx, bumpGeneration); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO catalog_versions (app_id, version, n, state, spec, guide_id, guide_version,
				created_at, created_by, updated_at)
			VALUES ($1, $2, (SELECT coalesce(max(n), 0) + 1 FROM catalog_versions WHERE app_id = $1), $3, $4, $5, $6, $7, $8, $7)`,
			v.AppID, v.Version, v.State, sqlrow.Spec(v.Spec), v.GuideID, v.GuideVersion, ts(v.CreatedAt), v.CreatedBy)
		if sqlState(err) == foreignKeyViolation {
			return fmt.Errorf("%w: app %s", store.ErrNotFound, v.AppID)
		}
		if err != nil {
			return exists(err, "version", v.AppID+"@"+v.Version)
		}
		_, err = insertAudit(ctx, tx, e)
		return err
	})
}

// UpdateVersion replaces a version's description if it is in state inState.
func (s *Store) UpdateVersion(ctx context.Context, v store.AppVersion, inState string) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		var state string
		err := tx.QueryRow(ctx, `SELECT state FROM catalog_versions WHERE app_id = $1 AND version = $2 FOR UPDATE`, v.AppID, v.Version).Scan(&state)
		if err != nil {
			return notFound(err, "version", v.AppID+"@"+v.Version)
		}
		if state != inState {
			return fmt.Errorf("%w: version %s@%s is %s, not %s", store.ErrStale, v.AppID, v.Version, state, inState)
		}
		_, err = tx.Exec(ctx, `UPDATE catalog_versions SET spec = $3, guide_id = $4, guide_version = $5, updated_at = $6
			WHERE app_id = $1 AND version = $2`, v.AppID, v.Version, sqlrow.Spec(v.Spec), v.GuideID, v.GuideVersion, ts(v.UpdatedAt))
		if err != nil {
			return fmt.Errorf("store: update version: %w", err)
		}
		_, err = tx.Exec(ctx, bumpGeneration)
		return err
	})
}

// GetVersion returns a version with its releases.
func (s *Store) GetVersion(ctx context.Context, appID, version string) (store.AppVersion, error) {
	v, err := sqlrow.Version(s.pool.QueryRow(ctx, `SELECT `+sqlrow.VersionCols+` FROM catalog_versions
		WHERE app_id = $1 AND version = $2`, appID, version))
	if err != nil {
		return v, notFound(err, "version", appID+"@"+version)
	}
	vs := []store.AppVersion{v}
	if err := s.withReleases(ctx, appID, vs); err != nil {
		return v, err
	}
	return vs[0], nil
}

// ListVersions lists an app's versions, oldest first, with their releases.
func (s *Store) ListVersions(ctx context.Context, appID string) ([]store.AppVersion, error) {
	vs, err := queryAll(ctx, s.pool, sqlrow.Version, `SELECT `+sqlrow.VersionCols+` FROM catalog_versions WHERE app_id = $1 ORDER BY n`, appID)
	if err != nil {
		return nil, err
	}
	return vs, s.withReleases(ctx, appID, vs)
}

func (s *Store) withReleases(ctx context.Context, appID string, vs []store.AppVersion) error {
	rs, err := s.ListReleases(ctx, store.ReleaseFilter{AppID: appID})
	if err != nil {
		return err
	}
	sqlrow.AttachReleases(vs, rs)
	return nil
}

// ApplyChanges applies changes in one transaction, each checked against its From. The
// generation's row lock, taken first, serialises them across replicas.
func (s *Store) ApplyChanges(ctx context.Context, changes []store.AppChange) ([]store.AuditEntry, error) {
	var out []store.AuditEntry
	err := s.tx(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		if _, err := tx.Exec(ctx, bumpGeneration); err != nil {
			return err
		}
		for _, c := range changes {
			var vstate, rstate string
			err := tx.QueryRow(ctx, `SELECT v.state, coalesce(r.state, '') FROM catalog_versions v
				LEFT JOIN catalog_releases r ON r.app_id = v.app_id AND r.version = v.version AND r.channel = $1
				WHERE v.app_id = $2 AND v.version = $3`, c.Channel, c.AppID, c.Version).Scan(&vstate, &rstate)
			if err != nil {
				return notFound(err, "version", c.AppID+"@"+c.Version)
			}
			if err := sqlrow.CheckChange(c, vstate, rstate); err != nil {
				return err
			}
			if c.Channel == "" {
				_, err = tx.Exec(ctx, `UPDATE catalog_versions SET state = $3, updated_at = $4 WHERE app_id = $1 AND version = $2`,
					c.AppID, c.Version, c.To, ts(c.At))
			} else {
				_, err = tx.Exec(ctx, `INSERT INTO catalog_releases (app_id, version, channel, state, updated_at) VALUES ($1, $2, $3, $4, $5)
					ON CONFLICT (app_id, version, channel) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
					c.AppID, c.Version, c.Channel, c.To, ts(c.At))
			}
			if err != nil {
				return fmt.Errorf("store: apply change: %w", err)
			}
			e := sqlrow.ChangeEntry(c)
			if e.N, err = insertAudit(ctx, tx, e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func insertAudit(ctx context.Context, tx pgx.Tx, e store.AuditEntry) (int64, error) {
	var n int64
	err := tx.QueryRow(ctx, `INSERT INTO catalog_audit (app_id, version, channel, from_state, to_state, actor, reason, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING n`, e.AppID, e.Version, e.Channel, e.From, e.To, e.Actor, e.Reason, ts(e.At)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: audit: %w", err)
	}
	return n, nil
}

// ListReleases lists releases by app, version, channel.
func (s *Store) ListReleases(ctx context.Context, f store.ReleaseFilter) ([]store.Release, error) {
	q, args := sqlrow.Where(`SELECT `+sqlrow.ReleaseCols+` FROM catalog_releases`, "$",
		map[string]string{"app_id": f.AppID, "channel": f.Channel, "state": f.State})
	return queryAll(ctx, s.pool, sqlrow.Release, q+` ORDER BY app_id, version, channel`, args...)
}

// AuditTrail lists audit entries oldest first.
func (s *Store) AuditTrail(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	q, args := sqlrow.Where(`SELECT `+sqlrow.AuditCols+` FROM catalog_audit`, "$", map[string]string{"app_id": f.AppID, "version": f.Version})
	if f.Limit > 0 {
		// The latest Limit entries, still oldest first.
		q = fmt.Sprintf(`SELECT * FROM (%s ORDER BY n DESC LIMIT %d) latest`, q, f.Limit)
	}
	return queryAll(ctx, s.pool, sqlrow.Audit, q+` ORDER BY n`, args...)
}

// CatalogGeneration returns the catalog's change counter.
func (s *Store) CatalogGeneration(ctx context.Context) (int64, error) {
	var g int64
	if err := s.pool.QueryRow(ctx, `SELECT gen FROM catalog_generation WHERE one = 1`).Scan(&g); err != nil {
		return 0, fmt.Errorf("store: catalog generation: %w", err)
	}
	return g, nil
}

// CreateGuide stores a guide without versions.
func (s *Store) CreateGuide(ctx context.Context, g store.Guide) error {
	if g.ID == "" || g.DepartmentID == "" || g.Title == "" {
		return invalid("guide needs an id, a department and a title")
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO catalog_guides (id, department_id, title, created_at) VALUES ($1, $2, $3, $4)`,
			g.ID, g.DepartmentID, g.Title, ts(g.CreatedAt))
		if sqlState(err) == foreignKeyViolation {
			return fmt.Errorf("%w: department %s", store.ErrNotFound, g.DepartmentID)
		}
		if err != nil {
			return exists(err, "guide", g.ID)
		}
		_, err = tx.Exec(ctx, bumpGeneration)
		return err
	})
}

// GetGuide returns a guide.
func (s *Store) GetGuide(ctx context.Context, id string) (store.Guide, error) {
	g, err := sqlrow.Guide(s.pool.QueryRow(ctx, `SELECT `+sqlrow.GuideCols+` FROM catalog_guides WHERE id = $1`, id))
	if err != nil {
		return g, notFound(err, "guide", id)
	}
	return g, nil
}

// ListGuides lists guides in ID order, of one department or all.
func (s *Store) ListGuides(ctx context.Context, departmentID string) ([]store.Guide, error) {
	q, args := sqlrow.Where(`SELECT `+sqlrow.GuideCols+` FROM catalog_guides`, "$", map[string]string{"department_id": departmentID})
	return queryAll(ctx, s.pool, sqlrow.Guide, q+` ORDER BY id`, args...)
}

// AddGuideVersion stores the guide's next version.
func (s *Store) AddGuideVersion(ctx context.Context, v store.GuideVersion) (store.GuideVersion, error) {
	if len(v.Doc) == 0 {
		return v, invalid("guide version needs a document")
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE catalog_guides SET latest = latest + 1 WHERE id = $1 RETURNING latest`, v.GuideID).Scan(&v.Version)
		if err != nil {
			return notFound(err, "guide", v.GuideID)
		}
		_, err = tx.Exec(ctx, `INSERT INTO catalog_guide_versions (guide_id, version, doc, created_at, created_by) VALUES ($1, $2, $3, $4, $5)`,
			v.GuideID, v.Version, []byte(v.Doc), ts(v.CreatedAt), v.CreatedBy)
		if err != nil {
			return fmt.Errorf("store: add guide version: %w", err)
		}
		_, err = tx.Exec(ctx, bumpGeneration)
		return err
	})
	if err != nil {
		return store.GuideVersion{}, err
	}
	v.CreatedAt = fromTS(ts(v.CreatedAt))
	return v, nil
}

// GetGuideVersion returns one version of a guide with its document.
func (s *Store) GetGuideVersion(ctx context.Context, guideID string, version int64) (store.GuideVersion, error) {
	v, err := sqlrow.GuideVersion(s.pool.QueryRow(ctx, `SELECT `+sqlrow.GuideVersionCols+`, doc FROM catalog_guide_versions
		WHERE guide_id = $1 AND version = $2`, guideID, version), true)
	if err != nil {
		return v, notFound(err, "guide version", fmt.Sprintf("%s/%d", guideID, version))
	}
	return v, nil
}

// ListGuideVersions lists a guide's versions, oldest first, without documents.
func (s *Store) ListGuideVersions(ctx context.Context, guideID string) ([]store.GuideVersion, error) {
	if _, err := s.GetGuide(ctx, guideID); err != nil {
		return nil, err
	}
	return queryAll(ctx, s.pool, func(sc sqlrow.Scanner) (store.GuideVersion, error) { return sqlrow.GuideVersion(sc, false) },
		`SELECT `+sqlrow.GuideVersionCols+` FROM catalog_guide_versions WHERE guide_id = $1 ORDER BY version`, guideID)
}

// queryAll runs a query and scans every row with scan.
func queryAll[T any](ctx context.Context, db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, scan func(sqlrow.Scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, _ := db.Query(ctx, q, args...)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if err != nil {
		return nil, fmt.Errorf("store: query: %w", err)
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}
