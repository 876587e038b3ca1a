-- The unified event stream (store.Events) and its rollups. Numbers 0300-0399 belong to the
-- data rooms: events, cases, ratings, outreach.

-- Raw events, deduplicated by (client_id, id), purged after the retention.
CREATE TABLE events (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id TEXT NOT NULL,
    id        TEXT NOT NULL,
    v         INTEGER NOT NULL,
    type      TEXT NOT NULL,
    channel   TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    session   TEXT NOT NULL,
    service   TEXT NOT NULL,
    region    TEXT NOT NULL,
    kiosk_id  TEXT NOT NULL,
    site_id   TEXT NOT NULL,
    device_ts BIGINT NOT NULL,
    recv_ts   BIGINT NOT NULL,
    props     BYTEA,
    UNIQUE (client_id, id)
);
CREATE INDEX events_recv ON events (recv_ts);

-- Rollup cells (hub/store/internal/rollup): events and a distinct-citizen sketch per key.
CREATE TABLE rollups (
    kind     TEXT NOT NULL,
    k1       TEXT NOT NULL,
    k2       TEXT NOT NULL,
    k3       TEXT NOT NULL,
    bucket   BIGINT NOT NULL,
    events   BIGINT NOT NULL,
    citizens BYTEA NOT NULL,
    PRIMARY KEY (kind, k1, k2, k3, bucket)
);
CREATE INDEX rollups_bucket ON rollups (kind, bucket);

-- Which services each pseudonym used, and how many citizens used both of two services.
CREATE TABLE service_use (
    pseudonym TEXT NOT NULL,
    service   TEXT NOT NULL,
    first_at  BIGINT NOT NULL,
    PRIMARY KEY (pseudonym, service)
);

CREATE TABLE co_use (
    a        TEXT NOT NULL,
    b        TEXT NOT NULL,
    citizens BIGINT NOT NULL,
    PRIMARY KEY (a, b)
);
