-- The outbox of the alerts' notifier (store.AlertNotices): a row for each change of an alert
-- (opened, acknowledged, resolved), written in the change's transaction and deleted once
-- delivered, so that a replica killed between the two still has it delivered. claimer and
-- claim_until (Unix nanoseconds; 0: nobody) are the lease of the replica holding it.
CREATE TABLE alert_notices (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    BIGINT NOT NULL REFERENCES alerts (id),
    state       TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    claimer     TEXT   NOT NULL DEFAULT '',
    claim_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX alert_notices_alert ON alert_notices (alert_id, id);
