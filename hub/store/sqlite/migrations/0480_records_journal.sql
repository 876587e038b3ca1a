-- The kiosks' journal records (wire.KindJournal), for the journal verifier (hub/journal): it reads
-- each device's journal records past its cursor, at every hub start for every device. Without this
-- index that read scans all of a device's records; partial, it costs nothing to the records of
-- other kinds. The store's query names the kind literally, as a partial index requires.
CREATE INDEX records_journal ON records (epoch_id, seq) WHERE kind = 'journal.entry';
