-- Content-addressed blobs (store.Blobs): kiosk bundles, agent binaries, guide templates.
CREATE TABLE blobs (
    sha256     TEXT PRIMARY KEY,
    type       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    data       BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
