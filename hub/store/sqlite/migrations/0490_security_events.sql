-- Security events of every source in one list (store.SecurityEvents): the journal verifier's, one
-- row each, and the refusals hub/security counts (logins, the broker's ACL and TLS refusals,
-- revocations), one row per kind, device, staff member, source address and minute (bucket, Unix
-- nanoseconds of the minute; 0 for a journal event). A refusal may name no kiosk, or one that
-- does not exist: device_id is '' then, and no longer references devices. SQLite cannot drop a
-- constraint: the table is rebuilt, its rows and IDs kept.
CREATE TABLE security_events_new (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	device_id TEXT    NOT NULL DEFAULT '',
	kind      TEXT    NOT NULL,
	record_id INTEGER NOT NULL DEFAULT 0,
	idx       INTEGER NOT NULL DEFAULT 0,
	detail    TEXT    NOT NULL DEFAULT '',
	at        INTEGER NOT NULL,
	staff     TEXT    NOT NULL DEFAULT '',
	source    TEXT    NOT NULL DEFAULT '',
	hits      INTEGER NOT NULL DEFAULT 1,
	last_at   INTEGER NOT NULL,
	bucket    INTEGER NOT NULL DEFAULT 0
);
INSERT INTO security_events_new (id, device_id, kind, record_id, idx, detail, at, last_at)
	SELECT id, device_id, kind, record_id, idx, detail, at, at FROM security_events;
DROP TABLE security_events;
ALTER TABLE security_events_new RENAME TO security_events;
CREATE INDEX security_events_device ON security_events (device_id, id);
CREATE INDEX security_events_staff ON security_events (staff, id) WHERE staff <> '';
CREATE INDEX security_events_counted ON security_events (last_at) WHERE bucket <> 0;
CREATE UNIQUE INDEX security_events_minute ON security_events (kind, device_id, staff, source, bucket) WHERE bucket <> 0;
