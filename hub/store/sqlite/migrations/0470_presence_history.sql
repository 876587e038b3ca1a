-- Presence history (store.Presence): each device's ended sessions with the replica that held
-- them and why they ended (fleet.DisconnectReason), the newest store.HistoryKeep per device.
-- Times are Unix nanoseconds (UTC).
CREATE TABLE presence_history (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	device_id  TEXT    NOT NULL REFERENCES devices (id),
	replica    TEXT    NOT NULL,
	started_at INTEGER NOT NULL,
	ended_at   INTEGER NOT NULL,
	reason     TEXT    NOT NULL,
	detail     TEXT    NOT NULL
);
CREATE INDEX presence_history_device ON presence_history (device_id, id);
