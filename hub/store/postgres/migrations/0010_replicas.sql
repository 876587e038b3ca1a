-- Hub replicas on one database (store.Replicas): the replica holding each device's session, one
-- lease per replica, and the fingerprints of the secrets every replica must be given.
-- Times are Unix nanoseconds (UTC).
ALTER TABLE devices ADD COLUMN replica TEXT COLLATE "C" NOT NULL DEFAULT '';
-- The lease sweep looks only at online devices.
CREATE INDEX devices_online_replica ON devices (replica) WHERE online;

CREATE TABLE replicas (
    id          TEXT COLLATE "C" PRIMARY KEY,
    renewed_at  BIGINT NOT NULL, -- the replica's clock at its last renewal
    lease_until BIGINT NOT NULL
);

CREATE TABLE pinned (
    name  TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL
);
