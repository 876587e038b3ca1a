-- Rollup rows keyed bucket-major: (kind, bucket, k1, k2, k3) instead of (kind, k1, k2, k3, bucket).
-- Every read of the rollups (heat, funnel, search misses: hub/store/internal/rollup.Scan) is a
-- range of buckets of one kind, so the rows it reads now lie side by side in the table's b-tree;
-- before, it went through the (kind, bucket) index and looked each row up in the table, one seek
-- per row (a day's heat by service, channel and region over 10 million events: 2,400 seeks). New
-- events also add to the newest buckets, so a commit's upserts now touch neighbouring pages. The
-- index on (kind, bucket) is no longer needed.
CREATE TABLE rollups_by_bucket (
    kind     TEXT NOT NULL,
    k1       TEXT NOT NULL,
    k2       TEXT NOT NULL,
    k3       TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    events   INTEGER NOT NULL,
    citizens BLOB NOT NULL,
    PRIMARY KEY (kind, bucket, k1, k2, k3)
) WITHOUT ROWID;
INSERT INTO rollups_by_bucket (kind, k1, k2, k3, bucket, events, citizens)
    SELECT kind, k1, k2, k3, bucket, events, citizens FROM rollups ORDER BY kind, bucket, k1, k2, k3;
DROP TABLE rollups;
ALTER TABLE rollups_by_bucket RENAME TO rollups;
