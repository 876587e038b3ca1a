-- Ratings of services (store.Ratings) and the follow-ups of bad ones. case_id is '' for a
-- rating of no case; one rating per (account, case) otherwise.
CREATE TABLE ratings (
    id         TEXT PRIMARY KEY,
    account    TEXT NOT NULL,
    case_id    TEXT NOT NULL,
    service    TEXT NOT NULL,
    department TEXT NOT NULL,
    channel    TEXT NOT NULL,
    site_id    TEXT NOT NULL,
    score      INTEGER NOT NULL,
    tags       TEXT NOT NULL, -- JSON array
    comment    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX ratings_case ON ratings (account, case_id) WHERE case_id <> '';
CREATE INDEX ratings_created ON ratings (created_at);

CREATE TABLE follow_ups (
    rating_id   TEXT PRIMARY KEY REFERENCES ratings (id),
    due         INTEGER NOT NULL,
    resolved_at INTEGER NOT NULL DEFAULT 0,
    resolved_by TEXT NOT NULL DEFAULT '',
    note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX follow_ups_open ON follow_ups (due) WHERE resolved_at = 0;
