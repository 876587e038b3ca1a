-- Changes other hub replicas must act on (store.Change), told on channel kf_change as "kind:id"
-- when the writing transaction commits, whichever replica wrote it. PostgreSQL folds identical
-- notices of one transaction into one. Nothing on the record ingest path notifies: NOTIFY
-- serializes the commits that use it.

-- kf_notify_device tells TG_ARGV[0] about the row's device_id.
CREATE FUNCTION kf_notify_device() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kf_change', TG_ARGV[0] || ':' || NEW.device_id);
    RETURN NULL;
END $$;

CREATE TRIGGER commands_notify AFTER INSERT ON commands
    FOR EACH ROW EXECUTE FUNCTION kf_notify_device('command');
CREATE TRIGGER desired_notify AFTER INSERT OR UPDATE ON desired
    FOR EACH ROW EXECUTE FUNCTION kf_notify_device('desired');

-- A device revoked (RevokeDevice, RetireDevices) loses its session wherever it is connected.
CREATE FUNCTION kf_notify_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kf_change', 'revoked:' || NEW.id);
    RETURN NULL;
END $$;

CREATE TRIGGER devices_revoked_notify AFTER UPDATE OF revoked_at ON devices
    FOR EACH ROW WHEN (OLD.revoked_at = 0 AND NEW.revoked_at <> 0) EXECUTE FUNCTION kf_notify_revoked();
