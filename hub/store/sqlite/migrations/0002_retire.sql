-- Retired devices: taken out of service for good (revoked, hidden from the fleet's lists); their
-- records stay. Unix nanoseconds, 0 while in service.
ALTER TABLE devices ADD COLUMN retired_at INTEGER NOT NULL DEFAULT 0;
