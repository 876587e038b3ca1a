-- Alert silences of a region (store.Silence.Region): a maintenance window over every kiosk under a
-- GB/T 2260 prefix, not only one kiosk. A silence names a device or a region: device_id is ''
-- for a region's, and so no longer references devices.
ALTER TABLE alert_silences DROP CONSTRAINT IF EXISTS alert_silences_device_id_fkey;
ALTER TABLE alert_silences
    ALTER COLUMN device_id SET DEFAULT '',
    ADD COLUMN region TEXT NOT NULL DEFAULT '';
