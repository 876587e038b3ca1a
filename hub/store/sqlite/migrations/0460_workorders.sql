-- Alert silences and work orders (store.Silences, store.WorkOrders). Times are Unix nanoseconds
-- (0: not yet).
CREATE TABLE alert_silences (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id  TEXT NOT NULL REFERENCES devices (id),
    rule       TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    ended_by   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX alert_silences_ends ON alert_silences (ends_at);

CREATE TABLE work_orders (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id   INTEGER NOT NULL REFERENCES alerts (id),
    device_id  TEXT NOT NULL REFERENCES devices (id),
    assignee   TEXT NOT NULL,
    bring      TEXT NOT NULL DEFAULT '',
    note       TEXT NOT NULL DEFAULT '',
    open       INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    closed_by  TEXT NOT NULL DEFAULT '',
    closed_at  INTEGER NOT NULL DEFAULT 0,
    closing    TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX work_orders_open ON work_orders (alert_id) WHERE open = 1;
CREATE INDEX work_orders_device ON work_orders (device_id, id);
