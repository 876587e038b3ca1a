-- The app catalog (hub/catalog): departments, apps, versions, their releases per channel, the
-- audit trail of every change of state, and service guides with their versions. Numbers
-- 0200-0299 belong to the catalog, its bundles and rollouts. Times are Unix nanoseconds (UTC).

CREATE TABLE catalog_departments (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE catalog_apps (
    id            TEXT PRIMARY KEY,
    department_id TEXT NOT NULL REFERENCES catalog_departments (id),
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX catalog_apps_department ON catalog_apps (department_id);

CREATE TABLE catalog_versions (
    app_id        TEXT NOT NULL REFERENCES catalog_apps (id),
    version       TEXT NOT NULL,
    n             INTEGER NOT NULL, -- creation order within the app
    state         TEXT NOT NULL,
    spec          BLOB NOT NULL,
    guide_id      TEXT NOT NULL DEFAULT '',
    guide_version INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL DEFAULT '',
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (app_id, version)
);

CREATE TABLE catalog_releases (
    app_id     TEXT NOT NULL,
    version    TEXT NOT NULL,
    channel    TEXT NOT NULL,
    state      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, version, channel),
    FOREIGN KEY (app_id, version) REFERENCES catalog_versions (app_id, version)
);
CREATE INDEX catalog_releases_channel ON catalog_releases (channel, state);

CREATE TABLE catalog_audit (
    n          INTEGER PRIMARY KEY,
    app_id     TEXT NOT NULL,
    version    TEXT NOT NULL,
    channel    TEXT NOT NULL DEFAULT '',
    from_state TEXT NOT NULL DEFAULT '',
    to_state   TEXT NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    at         INTEGER NOT NULL
);
CREATE INDEX catalog_audit_app ON catalog_audit (app_id, version, n);

CREATE TABLE catalog_guides (
    id            TEXT PRIMARY KEY,
    department_id TEXT NOT NULL REFERENCES catalog_departments (id),
    title         TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    latest        INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE catalog_guide_versions (
    guide_id   TEXT NOT NULL REFERENCES catalog_guides (id),
    version    INTEGER NOT NULL,
    doc        BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (guide_id, version)
);

-- One row: grows with every change of the catalog (store.Catalog.CatalogGeneration).
CREATE TABLE catalog_generation (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    gen INTEGER NOT NULL
);
INSERT INTO catalog_generation (one, gen) VALUES (1, 1);
