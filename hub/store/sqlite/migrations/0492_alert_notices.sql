-- The outbox of the alerts' notifier (store.AlertNotices): a row for each change of an alert
-- (opened, acknowledged, resolved), written in the change's transaction and deleted once
-- delivered, so that a hub killed between the two still delivers it. claimer and claim_until
-- (Unix nanoseconds; 0: nobody) are the lease of the deliverer holding it.
CREATE TABLE alert_notices (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id    INTEGER NOT NULL REFERENCES alerts (id),
    state       TEXT NOT NULL,
    at          INTEGER NOT NULL,
    claimer     TEXT NOT NULL DEFAULT '',
    claim_until INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alert_notices_alert ON alert_notices (alert_id, id);
