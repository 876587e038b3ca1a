-- Citizens' credentials beyond the ID card (hub/identity): passkeys, verified phone numbers and
-- the one-time codes sent to numbers (hashes only), upstream identities linked to accounts,
-- consents given to clients, one-time ceremony state, and accounts deleted whose deletion other
-- rooms are still to hear of. Times are Unix nanoseconds (UTC); lists are JSON arrays.

CREATE TABLE idp_passkeys (
    id         BLOB PRIMARY KEY,       -- WebAuthn credential ID
    account_id TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    credential BLOB NOT NULL,          -- public key, signature counter and flags
    created_at INTEGER NOT NULL,
    last_used  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX idp_passkeys_account ON idp_passkeys(account_id);

CREATE TABLE idp_phones (
    account_id  TEXT PRIMARY KEY,
    hash        BLOB NOT NULL UNIQUE,  -- keyed hash of the number
    enc         BLOB NOT NULL,         -- the number, encrypted, bound to the account
    verified_at INTEGER NOT NULL
);

CREATE TABLE idp_phone_codes (
    key          BLOB PRIMARY KEY,     -- keyed hash of the number
    code_hash    BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    tries        INTEGER NOT NULL DEFAULT 0,
    window_start INTEGER NOT NULL,
    sends        INTEGER NOT NULL,
    keep_until   INTEGER NOT NULL      -- past the code's life and the number's limit window
);

CREATE TABLE idp_links (
    connector  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    account_id TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (connector, subject)
);
CREATE INDEX idp_links_account ON idp_links(account_id);

CREATE TABLE idp_consents (
    account_id TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, client_id)
);

CREATE TABLE idp_ceremonies (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    doc        BLOB NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE idp_deletions (
    account_id TEXT PRIMARY KEY,
    deleted_at INTEGER NOT NULL
);

CREATE INDEX idp_browser_sessions_user ON idp_browser_sessions(user_id);
CREATE INDEX idp_device_auths_user ON idp_device_auths(user_id);
