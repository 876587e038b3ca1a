-- Staged rollouts (store.Rollouts): each rollout, its kiosks by wave, and the tags kiosks carry.
CREATE TABLE rollouts (
    id         TEXT COLLATE "C" PRIMARY KEY,
    rev        BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    app        TEXT NOT NULL,
    version    TEXT NOT NULL,
    state      TEXT NOT NULL,
    wave       BIGINT NOT NULL,
    spec       BYTEA NOT NULL,
    progress   BYTEA NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE rollout_devices (
    rollout_id TEXT COLLATE "C" NOT NULL REFERENCES rollouts (id),
    device_id  TEXT COLLATE "C" NOT NULL,
    wave       BIGINT NOT NULL,
    previous   TEXT NOT NULL DEFAULT '',
    state      TEXT NOT NULL,
    error      TEXT NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (rollout_id, device_id)
);

CREATE TABLE device_tags (
    device_id TEXT COLLATE "C" NOT NULL REFERENCES devices (id),
    tag       TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (device_id, tag)
);
