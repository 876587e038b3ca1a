-- Content-addressed blobs (store.Blobs): kiosk bundles, agent binaries, guide templates.
CREATE TABLE blobs (
    sha256     TEXT COLLATE "C" PRIMARY KEY,
    type       TEXT NOT NULL,
    size       BIGINT NOT NULL,
    data       BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
