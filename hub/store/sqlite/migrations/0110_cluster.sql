-- Wrong device user codes per account (store.Guesses), kept in the store as on PostgreSQL.
CREATE TABLE idp_guesses (
    user_id TEXT PRIMARY KEY,
    n       INTEGER NOT NULL,
    since   INTEGER NOT NULL
);
