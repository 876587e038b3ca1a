-- Bulk jobs (store.Bulk, hub/bulk): one action to the kiosks a filter selected, and how far each
-- kiosk got. Times are Unix nanoseconds (0: not yet).
CREATE TABLE bulk_jobs (
    id         TEXT COLLATE "C" PRIMARY KEY,
    idem_key   TEXT NOT NULL,
    action     TEXT NOT NULL,
    request    BYTEA NOT NULL,
    scope      TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    roles      TEXT NOT NULL DEFAULT '',
    source     TEXT NOT NULL DEFAULT '',
    n_devices  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    done_at    BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX bulk_jobs_key ON bulk_jobs (created_by, idem_key);
CREATE INDEX bulk_jobs_running ON bulk_jobs (done_at, created_at);

CREATE TABLE bulk_items (
    job_id     TEXT COLLATE "C" NOT NULL REFERENCES bulk_jobs (id),
    device_id  TEXT COLLATE "C" NOT NULL,
    state      TEXT NOT NULL,
    ref        TEXT NOT NULL DEFAULT '',
    error      TEXT NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (job_id, device_id)
);
