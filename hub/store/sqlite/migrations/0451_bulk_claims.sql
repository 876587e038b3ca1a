-- Claims of bulk items (store.Bulk.ClaimBulkItems): which replica's engine acts on a kiosk of a
-- job, until when (Unix nanoseconds; 0: never claimed). Replicas stepping one job at once then act
-- on each kiosk once.
ALTER TABLE bulk_items ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE bulk_items ADD COLUMN claimed_until INTEGER NOT NULL DEFAULT 0;
