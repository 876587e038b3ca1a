-- The audit log of staff and admin actions: append-only, each entry chained to the one before by
-- its hash (store.AuditHash). Times are Unix nanoseconds.
CREATE TABLE staff_audit (
	id     INTEGER PRIMARY KEY AUTOINCREMENT,
	at     INTEGER NOT NULL,
	actor  TEXT    NOT NULL,
	roles  TEXT    NOT NULL,
	action TEXT    NOT NULL,
	target TEXT    NOT NULL,
	source TEXT    NOT NULL,
	status INTEGER NOT NULL,
	result TEXT    NOT NULL,
	prev   TEXT    NOT NULL UNIQUE, -- no two entries follow the same one
	hash   TEXT    NOT NULL UNIQUE
);
CREATE INDEX staff_audit_actor ON staff_audit (actor, id);
CREATE INDEX staff_audit_target ON staff_audit (target, id);
