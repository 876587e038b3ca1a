-- The transaction journal's verification (hub/journal): how far each kiosk's hash chain is
-- verified, and the security events it raised. Times are Unix nanoseconds.
CREATE TABLE journal_heads (
	device_id  TEXT    PRIMARY KEY REFERENCES devices (id),
	last_record BIGINT NOT NULL,
	epoch      TEXT    NOT NULL,
	chain      TEXT    NOT NULL,
	idx        BIGINT  NOT NULL,
	hash       TEXT    NOT NULL,
	checkpoint BIGINT  NOT NULL,
	entries    BIGINT  NOT NULL,
	events     BIGINT  NOT NULL,
	updated_at BIGINT  NOT NULL
);
CREATE TABLE security_events (
	id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	device_id TEXT    NOT NULL REFERENCES devices (id),
	kind      TEXT    NOT NULL,
	record_id BIGINT  NOT NULL,
	idx       BIGINT  NOT NULL,
	detail    TEXT    NOT NULL,
	at        BIGINT  NOT NULL
);
CREATE INDEX security_events_device ON security_events (device_id, id);
