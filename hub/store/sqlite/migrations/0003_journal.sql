-- The transaction journal's verification (hub/journal): how far each kiosk's hash chain is
-- verified, and the security events it raised. Times are Unix nanoseconds.
CREATE TABLE journal_heads (
	device_id  TEXT    PRIMARY KEY REFERENCES devices (id),
	last_record INTEGER NOT NULL,
	epoch      TEXT    NOT NULL,
	chain      TEXT    NOT NULL,
	idx        INTEGER NOT NULL,
	hash       TEXT    NOT NULL,
	checkpoint INTEGER NOT NULL,
	entries    INTEGER NOT NULL,
	events     INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE TABLE security_events (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	device_id TEXT    NOT NULL REFERENCES devices (id),
	kind      TEXT    NOT NULL,
	record_id INTEGER NOT NULL,
	idx       INTEGER NOT NULL,
	detail    TEXT    NOT NULL,
	at        INTEGER NOT NULL
);
CREATE INDEX security_events_device ON security_events (device_id, id);
