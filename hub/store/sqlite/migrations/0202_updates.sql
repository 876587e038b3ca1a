-- The update repository (store.Updates): every version of each TUF role's signed metadata.
CREATE TABLE tuf_metadata (
    role       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    data       BLOB NOT NULL,
    expires    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (role, version)
);
