-- The update repository (store.Updates): every version of each TUF role's signed metadata.
CREATE TABLE tuf_metadata (
    role       TEXT COLLATE "C" NOT NULL,
    version    BIGINT NOT NULL,
    data       BYTEA NOT NULL,
    expires    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (role, version)
);
