-- Identity (OpenID Provider) storage: clients, accounts, authorization requests, tokens,
-- device authorizations, signing keys, assertion IDs and browser sessions.
-- Times are Unix nanoseconds (UTC); lists are JSON arrays.

CREATE TABLE idp_clients (
    id   TEXT PRIMARY KEY,
    doc  TEXT NOT NULL,          -- JSON of identity.Client without the secret
    secret_hash BLOB
);

CREATE TABLE idp_accounts (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    username      TEXT UNIQUE,
    name          TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL DEFAULT '',
    roles         TEXT NOT NULL DEFAULT '[]',
    id_number_enc BLOB,
    id_number_hash BLOB UNIQUE,
    failures      INTEGER NOT NULL DEFAULT 0,
    last_failure  INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE idp_auth_requests (
    id         TEXT PRIMARY KEY,
    code_hash  BLOB UNIQUE,
    consumed   INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL,
    doc        TEXT NOT NULL
);

CREATE TABLE idp_tokens (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    hash       BLOB UNIQUE,
    family_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    subject    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    amr        TEXT NOT NULL,
    acr        TEXT NOT NULL,
    auth_time  INTEGER NOT NULL,
    device_id  TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0,
    rotated    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX idp_tokens_family ON idp_tokens(family_id);
CREATE INDEX idp_tokens_user ON idp_tokens(user_id, expires_at);
CREATE INDEX idp_tokens_subject ON idp_tokens(client_id, subject);

CREATE TABLE idp_device_auths (
    code_hash  BLOB PRIMARY KEY,
    user_code  TEXT NOT NULL UNIQUE,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    kiosk_id   TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    interval_ns INTEGER NOT NULL,
    last_poll  INTEGER NOT NULL DEFAULT 0,
    state      TEXT NOT NULL,
    user_id    TEXT NOT NULL DEFAULT '',
    subject    TEXT NOT NULL DEFAULT '',
    amr        TEXT NOT NULL DEFAULT '[]',
    auth_time  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE idp_signing_keys (
    id          TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_enc BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE idp_assertions (
    id         TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);

CREATE TABLE idp_browser_sessions (
    hash       BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL,
    amr        TEXT NOT NULL,
    auth_time  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
