-- Staged rollouts (store.Rollouts): each rollout, its kiosks by wave, and the tags kiosks carry.
CREATE TABLE rollouts (
    id         TEXT PRIMARY KEY,
    rev        INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    app        TEXT NOT NULL,
    version    TEXT NOT NULL,
    state      TEXT NOT NULL,
    wave       INTEGER NOT NULL,
    spec       BLOB NOT NULL,
    progress   BLOB NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE rollout_devices (
    rollout_id TEXT NOT NULL REFERENCES rollouts (id),
    device_id  TEXT NOT NULL,
    wave       INTEGER NOT NULL,
    previous   TEXT NOT NULL DEFAULT '',
    state      TEXT NOT NULL,
    error      TEXT NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (rollout_id, device_id)
);

CREATE TABLE device_tags (
    device_id TEXT NOT NULL REFERENCES devices (id),
    tag       TEXT NOT NULL,
    PRIMARY KEY (device_id, tag)
);
