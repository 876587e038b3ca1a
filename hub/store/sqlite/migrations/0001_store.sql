-- The hub's fleet store: sites, devices, enrollment tokens, uplink records with their per
-- (device, epoch) cursors, commands, desired and reported state.
-- Times are Unix nanoseconds (UTC), 0 for none, except records.device_ts (the device's Unix
-- milliseconds, as sent).

CREATE TABLE sites (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    region  TEXT NOT NULL,
    address TEXT NOT NULL DEFAULT ''
);

CREATE TABLE devices (
    id            TEXT PRIMARY KEY,
    site_id       TEXT NOT NULL REFERENCES sites (id),
    region        TEXT NOT NULL,
    model         TEXT NOT NULL DEFAULT '',
    cert_serial   TEXT NOT NULL DEFAULT '',
    cert_expiry   INTEGER NOT NULL DEFAULT 0,
    cert_pem      BLOB,
    enrolled_at   INTEGER NOT NULL,
    revoked_at    INTEGER NOT NULL DEFAULT 0,
    online        INTEGER NOT NULL DEFAULT 0,
    presence_at   INTEGER NOT NULL DEFAULT 0,
    last_seen     INTEGER NOT NULL DEFAULT 0,
    agent_version TEXT NOT NULL DEFAULT '',
    -- Latest heartbeat and peripherals bodies, with the (epoch row, seq) of the record that set
    -- them so that a record stored out of order never overwrites a later one.
    health        BLOB,
    health_at     INTEGER NOT NULL DEFAULT 0,
    health_epoch  INTEGER NOT NULL DEFAULT 0,
    health_seq    INTEGER NOT NULL DEFAULT 0,
    periph        BLOB,
    periph_at     INTEGER NOT NULL DEFAULT 0,
    periph_epoch  INTEGER NOT NULL DEFAULT 0,
    periph_seq    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX devices_site ON devices (site_id);
CREATE INDEX devices_region ON devices (region);

CREATE TABLE enrollment_tokens (
    id         TEXT PRIMARY KEY,
    hash       BLOB NOT NULL UNIQUE,
    site_id    TEXT NOT NULL REFERENCES sites (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER NOT NULL DEFAULT 0,
    device_id  TEXT NOT NULL DEFAULT ''
);

-- One row per (device, epoch), in first-seen order (id). upto is the contiguous watermark: every
-- seq 1..upto is in records, upto+1 is not.
CREATE TABLE epochs (
    id        INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    epoch     TEXT NOT NULL,
    upto      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (device_id, epoch)
);

-- Records of the contiguous prefix of each epoch. They enter in seq order, so the hub-wide id
-- orders a device's records by (epoch, seq) within an epoch.
CREATE TABLE records (
    id        INTEGER PRIMARY KEY,
    epoch_id  INTEGER NOT NULL REFERENCES epochs (id),
    seq       INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    class     TEXT NOT NULL,
    device_ts INTEGER NOT NULL,
    recv_ts   INTEGER NOT NULL,
    body      BLOB NOT NULL,
    UNIQUE (epoch_id, seq)
);

-- Records that arrived beyond a gap. They are durable (and their effects applied) but not acked;
-- when the gap is filled they move to records in seq order.
CREATE TABLE pending_records (
    epoch_id  INTEGER NOT NULL REFERENCES epochs (id),
    seq       INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    class     TEXT NOT NULL,
    device_ts INTEGER NOT NULL,
    recv_ts   INTEGER NOT NULL,
    body      BLOB NOT NULL,
    PRIMARY KEY (epoch_id, seq)
) WITHOUT ROWID;

CREATE TABLE commands (
    n            INTEGER PRIMARY KEY, -- creation order
    id           TEXT NOT NULL UNIQUE,
    device_id    TEXT NOT NULL REFERENCES devices (id),
    name         TEXT NOT NULL,
    args         BLOB,
    state        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    delivered_at INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER NOT NULL,
    output       BLOB,
    error        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX commands_device ON commands (device_id, n);
CREATE INDEX commands_open ON commands (expires_at) WHERE state IN ('queued', 'delivered');

CREATE TABLE desired (
    device_id  TEXT PRIMARY KEY REFERENCES devices (id),
    version    INTEGER NOT NULL,
    doc        BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE reported (
    device_id  TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    doc        BLOB,
    error      TEXT NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL
);
