-- Citizens' cases (store.Cases): the case, its events (the status timeline, numbered hub-wide),
-- and its documents (sealed by hub/cases when they hold personal data).
CREATE TABLE cases (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    ref        TEXT NOT NULL,
    account    TEXT NOT NULL,
    service    TEXT NOT NULL,
    department TEXT NOT NULL,
    title      TEXT NOT NULL,
    channel    TEXT NOT NULL,
    site_id    TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (client_id, ref)
);
CREATE INDEX cases_account ON cases (account, updated_at);

CREATE TABLE case_events (
    seq         INTEGER PRIMARY KEY,
    case_id     TEXT NOT NULL REFERENCES cases (id),
    account     TEXT NOT NULL,
    status      TEXT NOT NULL,
    note        TEXT NOT NULL,
    document_id TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX case_events_account ON case_events (account, seq);
CREATE INDEX case_events_case ON case_events (case_id, seq);

CREATE TABLE case_documents (
    id           TEXT PRIMARY KEY,
    case_id      TEXT NOT NULL REFERENCES cases (id),
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    encrypted    INTEGER NOT NULL,
    content      BLOB NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX case_documents_case ON case_documents (case_id, created_at);
