-- Hub replicas (store.Replicas): the replica holding each device's session, one lease per
-- replica, and the fingerprints of the secrets every replica must be given. A hub on SQLite is
-- the only replica of its database; the same tables keep its presence the same way.
-- Times are Unix nanoseconds (UTC).
ALTER TABLE devices ADD COLUMN replica TEXT NOT NULL DEFAULT '';
CREATE INDEX devices_online_replica ON devices (replica) WHERE online;

CREATE TABLE replicas (
    id          TEXT PRIMARY KEY,
    renewed_at  INTEGER NOT NULL, -- the replica's clock at its last renewal
    lease_until INTEGER NOT NULL
);

CREATE TABLE pinned (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
