-- Citizens' credentials beyond the ID card (hub/identity): passkeys, verified phone numbers and
-- the one-time codes sent to numbers (hashes only), upstream identities linked to accounts,
-- consents given to clients, one-time ceremony state, and accounts deleted whose deletion other
-- rooms are still to hear of. The same tables as the SQLite store's 0110, in PostgreSQL's
-- dialect. Times are Unix nanoseconds (UTC).

CREATE TABLE idp_passkeys (
    id         BYTEA PRIMARY KEY,      -- WebAuthn credential ID
    account_id TEXT COLLATE "C" NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    credential BYTEA NOT NULL,         -- public key, signature counter and flags
    created_at BIGINT NOT NULL,
    last_used  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX idp_passkeys_account ON idp_passkeys (account_id);

CREATE TABLE idp_phones (
    account_id  TEXT COLLATE "C" PRIMARY KEY,
    hash        BYTEA NOT NULL UNIQUE, -- keyed hash of the number
    enc         BYTEA NOT NULL,        -- the number, encrypted, bound to the account
    verified_at BIGINT NOT NULL
);

CREATE TABLE idp_phone_codes (
    key          BYTEA PRIMARY KEY,    -- keyed hash of the number
    code_hash    BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    tries        INTEGER NOT NULL DEFAULT 0,
    window_start BIGINT NOT NULL,
    sends        INTEGER NOT NULL,
    keep_until   BIGINT NOT NULL       -- past the code's life and the number's limit window
);
CREATE INDEX idp_phone_codes_keep ON idp_phone_codes (keep_until);

CREATE TABLE idp_links (
    connector  TEXT COLLATE "C" NOT NULL,
    subject    TEXT COLLATE "C" NOT NULL,
    account_id TEXT COLLATE "C" NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    PRIMARY KEY (connector, subject)
);
CREATE INDEX idp_links_account ON idp_links (account_id);

CREATE TABLE idp_consents (
    account_id TEXT COLLATE "C" NOT NULL,
    client_id  TEXT COLLATE "C" NOT NULL,
    scopes     TEXT[] NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, client_id)
);

CREATE TABLE idp_ceremonies (
    id         TEXT COLLATE "C" PRIMARY KEY,
    kind       TEXT NOT NULL,
    doc        BYTEA NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX idp_ceremonies_expiry ON idp_ceremonies (expires_at);

CREATE TABLE idp_deletions (
    account_id TEXT COLLATE "C" PRIMARY KEY,
    deleted_at BIGINT NOT NULL
);

CREATE INDEX idp_browser_sessions_user ON idp_browser_sessions (user_id);
CREATE INDEX idp_device_auths_user ON idp_device_auths (user_id);
