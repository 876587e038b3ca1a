-- Alert silences of a region (store.Silence.Region): a maintenance window over every kiosk under a
-- GB/T 2260 prefix, not only one kiosk. A silence names a device or a region: device_id is ''
-- for a region's, and so no longer references devices. SQLite cannot drop a constraint: the table
-- is rebuilt, its rows and IDs kept.
CREATE TABLE alert_silences_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id  TEXT NOT NULL DEFAULT '',
    region     TEXT NOT NULL DEFAULT '',
    rule       TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    ended_by   TEXT NOT NULL DEFAULT ''
);
INSERT INTO alert_silences_new (id, device_id, rule, reason, created_by, starts_at, ends_at, ended_by)
    SELECT id, device_id, rule, reason, created_by, starts_at, ends_at, ended_by FROM alert_silences;
DROP TABLE alert_silences;
ALTER TABLE alert_silences_new RENAME TO alert_silences;
CREATE INDEX alert_silences_ends ON alert_silences (ends_at);
