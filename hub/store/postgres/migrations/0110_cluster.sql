-- Identity state shared by hub replicas: wrong device user codes per account (store.Guesses),
-- and notices (channel kf_change, see 0011_notify.sql) of changed clients and new signing keys,
-- so that every replica drops its cached copies at once.

CREATE TABLE idp_guesses (
    user_id TEXT COLLATE "C" PRIMARY KEY,
    n       INTEGER NOT NULL,
    since   BIGINT NOT NULL
);

CREATE FUNCTION kf_notify_client() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('kf_change', 'client:' || OLD.id);
    ELSE
        PERFORM pg_notify('kf_change', 'client:' || NEW.id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER idp_clients_notify AFTER INSERT OR UPDATE OR DELETE ON idp_clients
    FOR EACH ROW EXECUTE FUNCTION kf_notify_client();

CREATE FUNCTION kf_notify_signing_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kf_change', 'signing-keys:');
    RETURN NULL;
END $$;

CREATE TRIGGER idp_signing_keys_notify AFTER INSERT ON idp_signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION kf_notify_signing_keys();
