-- Tokens bound to what they are for (RFC 8707 resource indicators) and the provider's
-- encryption key beside its signing keys. Tokens issued before have no audience: no API of the
-- hub accepts them, and their holders log in again.
ALTER TABLE idp_tokens ADD COLUMN audience TEXT NOT NULL DEFAULT '[]';
ALTER TABLE idp_device_auths ADD COLUMN audience TEXT NOT NULL DEFAULT '[]';
ALTER TABLE idp_signing_keys ADD COLUMN key_use TEXT NOT NULL DEFAULT 'sig';
