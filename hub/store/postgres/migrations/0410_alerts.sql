-- Alerts raised by the hub's rules (hub/alerts): at most one unresolved alert per kiosk, rule and
-- subject; open -> acknowledged -> resolved, with who and when. Times are Unix nanoseconds
-- (0: not yet).
CREATE TABLE alerts (
	id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	device_id   TEXT    NOT NULL REFERENCES devices (id),
	rule        TEXT    NOT NULL,
	subject     TEXT    NOT NULL,
	detail      TEXT    NOT NULL,
	state       TEXT    NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
	opened_at   BIGINT NOT NULL,
	ack_by      TEXT    NOT NULL DEFAULT '',
	ack_at      BIGINT NOT NULL DEFAULT 0,
	resolved_by TEXT    NOT NULL DEFAULT '',
	resolved_at BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX alerts_unresolved ON alerts (device_id, rule, subject) WHERE state <> 'resolved';
CREATE INDEX alerts_device ON alerts (device_id, id);
