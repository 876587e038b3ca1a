-- How far the rollups have folded the events table (hub/store/sqlite/events.go): every event up
-- to seq is in the rollups, those after it are not yet. Events committed before this migration
-- were folded as they committed.
CREATE TABLE rollup_fold (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq INTEGER NOT NULL
);
INSERT INTO rollup_fold (one, seq) SELECT 1, COALESCE(MAX(seq), 0) FROM events;
