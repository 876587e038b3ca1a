-- Identity (OpenID Provider) storage: clients, accounts, authorization requests, tokens, device
-- authorizations, signing keys, assertion IDs and browser sessions. The same tables as the SQLite
-- store, in PostgreSQL's dialect: lists are text arrays, documents JSONB.
-- Times are Unix nanoseconds (UTC), 0 for none.

CREATE TABLE idp_clients (
    id          TEXT COLLATE "C" PRIMARY KEY,
    doc         JSONB NOT NULL, -- store.Client without the secret
    secret_hash BYTEA
);

CREATE TABLE idp_accounts (
    id             TEXT COLLATE "C" PRIMARY KEY,
    kind           TEXT NOT NULL,
    username       TEXT UNIQUE,
    name           TEXT NOT NULL DEFAULT '',
    password_hash  TEXT NOT NULL DEFAULT '',
    roles          TEXT[] NOT NULL DEFAULT '{}',
    id_number_enc  BYTEA,
    id_number_hash BYTEA UNIQUE,
    failures       INTEGER NOT NULL DEFAULT 0,
    last_failure   BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL
);

CREATE TABLE idp_auth_requests (
    id         TEXT COLLATE "C" PRIMARY KEY,
    code_hash  BYTEA UNIQUE,
    consumed   BOOLEAN NOT NULL DEFAULT false,
    expires_at BIGINT NOT NULL,
    doc        JSONB NOT NULL
);
CREATE INDEX idp_auth_requests_expiry ON idp_auth_requests (expires_at);

CREATE TABLE idp_tokens (
    id         TEXT COLLATE "C" PRIMARY KEY,
    kind       TEXT NOT NULL,
    hash       BYTEA UNIQUE,
    family_id  TEXT COLLATE "C" NOT NULL,
    user_id    TEXT COLLATE "C" NOT NULL,
    subject    TEXT COLLATE "C" NOT NULL,
    client_id  TEXT COLLATE "C" NOT NULL,
    scopes     TEXT[] NOT NULL,
    amr        TEXT[] NOT NULL,
    acr        TEXT NOT NULL,
    auth_time  BIGINT NOT NULL,
    device_id  TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked    BOOLEAN NOT NULL DEFAULT false,
    rotated    BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX idp_tokens_family ON idp_tokens (family_id);
CREATE INDEX idp_tokens_user ON idp_tokens (user_id, expires_at);
CREATE INDEX idp_tokens_subject ON idp_tokens (client_id, subject);
CREATE INDEX idp_tokens_expiry ON idp_tokens (expires_at);

CREATE TABLE idp_device_auths (
    code_hash   BYTEA PRIMARY KEY,
    user_code   TEXT COLLATE "C" NOT NULL UNIQUE,
    client_id   TEXT COLLATE "C" NOT NULL,
    scopes      TEXT[] NOT NULL,
    kiosk_id    TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    interval_ns BIGINT NOT NULL,
    last_poll   BIGINT NOT NULL DEFAULT 0,
    state       TEXT NOT NULL,
    user_id     TEXT NOT NULL DEFAULT '',
    subject     TEXT NOT NULL DEFAULT '',
    amr         TEXT[] NOT NULL DEFAULT '{}',
    auth_time   BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE idp_signing_keys (
    id          TEXT COLLATE "C" PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_enc BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT NOT NULL DEFAULT 0
);

-- An assertion ID is the issuer's key and the assertion's jti, joined by a NUL byte, which TEXT
-- cannot hold.
CREATE TABLE idp_assertions (
    id         BYTEA PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX idp_assertions_expiry ON idp_assertions (expires_at);

CREATE TABLE idp_browser_sessions (
    hash       BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL,
    amr        TEXT[] NOT NULL,
    auth_time  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
