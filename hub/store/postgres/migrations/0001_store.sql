-- The hub's fleet store on PostgreSQL: sites, devices, enrollment tokens, uplink records with their
-- per (device, epoch) watermarks, commands, desired and reported state. The same tables as the
-- SQLite store, in PostgreSQL's dialect.
-- Times are Unix nanoseconds (UTC), 0 for none, as in the SQLite store (exact round trips, one
-- meaning on both backends), except records.device_ts (the device's Unix milliseconds, as sent).
-- Identifiers sort by byte (COLLATE "C") whatever the cluster's locale, as in SQLite.
-- Tables updated in place all the time (devices, epochs) leave room in each page for HOT updates.

CREATE TABLE sites (
    id      TEXT COLLATE "C" PRIMARY KEY,
    name    TEXT NOT NULL,
    region  TEXT COLLATE "C" NOT NULL,
    address TEXT NOT NULL DEFAULT ''
);

CREATE TABLE devices (
    id            TEXT COLLATE "C" PRIMARY KEY,
    site_id       TEXT COLLATE "C" NOT NULL REFERENCES sites (id),
    region        TEXT COLLATE "C" NOT NULL,
    model         TEXT NOT NULL DEFAULT '',
    cert_serial   TEXT NOT NULL DEFAULT '',
    cert_expiry   BIGINT NOT NULL DEFAULT 0,
    cert_pem      BYTEA,
    enrolled_at   BIGINT NOT NULL,
    revoked_at    BIGINT NOT NULL DEFAULT 0,
    online        BOOLEAN NOT NULL DEFAULT false,
    presence_at   BIGINT NOT NULL DEFAULT 0,
    last_seen     BIGINT NOT NULL DEFAULT 0,
    agent_version TEXT NOT NULL DEFAULT '',
    -- Latest heartbeat and peripherals bodies, with the (epoch row, seq) of the record that set
    -- them so that a record stored out of order never overwrites a later one.
    health        BYTEA,
    health_at     BIGINT NOT NULL DEFAULT 0,
    health_epoch  BIGINT NOT NULL DEFAULT 0,
    health_seq    BIGINT NOT NULL DEFAULT 0,
    periph        BYTEA,
    periph_at     BIGINT NOT NULL DEFAULT 0,
    periph_epoch  BIGINT NOT NULL DEFAULT 0,
    periph_seq    BIGINT NOT NULL DEFAULT 0
) WITH (fillfactor = 70);
CREATE INDEX devices_site ON devices (site_id);
CREATE INDEX devices_region ON devices (region);

CREATE TABLE enrollment_tokens (
    id         TEXT COLLATE "C" PRIMARY KEY,
    hash       BYTEA NOT NULL UNIQUE,
    site_id    TEXT COLLATE "C" NOT NULL REFERENCES sites (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT NOT NULL DEFAULT 0,
    device_id  TEXT NOT NULL DEFAULT ''
);

-- One row per (device, epoch), in first-seen order (id). upto is the contiguous watermark: every
-- seq 1..upto is in records, upto+1 is not. CommitBatches locks the rows of the epochs it
-- commits, in (device_id, epoch) order, so that hub replicas committing batches of the same
-- device take turns.
CREATE TABLE epochs (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id TEXT COLLATE "C" NOT NULL,
    epoch     TEXT COLLATE "C" NOT NULL,
    upto      BIGINT NOT NULL DEFAULT 0,
    UNIQUE (device_id, epoch)
) WITH (fillfactor = 70);

-- Records of the contiguous prefix of each epoch. They enter in seq order, under their epoch's
-- lock, so the hub-wide id orders a device's records by seq within an epoch. No foreign key to
-- epochs: only CommitBatches writes here, under that epoch row's lock, and a key check per row
-- would cost the hot path a lookup and a lock each.
CREATE TABLE records (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    epoch_id  BIGINT NOT NULL,
    seq       BIGINT NOT NULL,
    kind      TEXT COLLATE "C" NOT NULL,
    class     TEXT NOT NULL,
    device_ts BIGINT NOT NULL,
    recv_ts   BIGINT NOT NULL,
    body      BYTEA NOT NULL,
    UNIQUE (epoch_id, seq)
);

-- Records that arrived beyond a gap. They are durable (and their effects applied) but not acked;
-- when the gap is filled they move to records in seq order.
CREATE TABLE pending_records (
    epoch_id  BIGINT NOT NULL,
    seq       BIGINT NOT NULL,
    kind      TEXT COLLATE "C" NOT NULL,
    class     TEXT NOT NULL,
    device_ts BIGINT NOT NULL,
    recv_ts   BIGINT NOT NULL,
    body      BYTEA NOT NULL,
    PRIMARY KEY (epoch_id, seq)
);

CREATE TABLE commands (
    n            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- creation order
    id           TEXT COLLATE "C" NOT NULL UNIQUE,
    device_id    TEXT COLLATE "C" NOT NULL REFERENCES devices (id),
    name         TEXT NOT NULL,
    args         BYTEA,
    state        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    delivered_at BIGINT NOT NULL DEFAULT 0,
    updated_at   BIGINT NOT NULL,
    output       BYTEA,
    error        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX commands_device ON commands (device_id, n);
CREATE INDEX commands_open ON commands (expires_at) WHERE state IN ('queued', 'delivered');

CREATE TABLE desired (
    device_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES devices (id),
    version    BIGINT NOT NULL,
    doc        BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE reported (
    device_id  TEXT COLLATE "C" PRIMARY KEY,
    version    BIGINT NOT NULL,
    doc        BYTEA,
    error      TEXT NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL
);
