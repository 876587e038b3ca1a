-- Security events of every source in one list (store.SecurityEvents): the journal verifier's, one
-- row each, and the refusals hub/security counts (logins, the broker's ACL and TLS refusals,
-- revocations), one row per kind, device, staff member, source address and minute (bucket, Unix
-- nanoseconds of the minute; 0 for a journal event). A refusal may name no kiosk, or one that
-- does not exist: device_id is '' then, and no longer references devices.
ALTER TABLE security_events DROP CONSTRAINT IF EXISTS security_events_device_id_fkey;
ALTER TABLE security_events
	ALTER COLUMN device_id SET DEFAULT '',
	ALTER COLUMN record_id SET DEFAULT 0,
	ALTER COLUMN idx SET DEFAULT 0,
	ALTER COLUMN detail SET DEFAULT '',
	ADD COLUMN staff   TEXT   NOT NULL DEFAULT '',
	ADD COLUMN source  TEXT   NOT NULL DEFAULT '',
	ADD COLUMN hits    BIGINT NOT NULL DEFAULT 1,
	ADD COLUMN last_at BIGINT NOT NULL DEFAULT 0,
	ADD COLUMN bucket  BIGINT NOT NULL DEFAULT 0;
UPDATE security_events SET last_at = at;
CREATE INDEX security_events_staff ON security_events (staff, id) WHERE staff <> '';
CREATE INDEX security_events_counted ON security_events (last_at) WHERE bucket <> 0;
CREATE UNIQUE INDEX security_events_minute ON security_events (kind, device_id, staff, source, bucket) WHERE bucket <> 0;
