-- Citizens who opted out of recommendations (store.Outreach).
CREATE TABLE outreach_opt_outs (
    account TEXT PRIMARY KEY,
    at      INTEGER NOT NULL
);
