-- A staff account's region scope (GB/T 2260 prefixes): the kiosks it sees and acts on (as the
-- SQLite store's 0400). Empty: the whole country, as every account had before.
ALTER TABLE idp_accounts ADD COLUMN regions TEXT[] NOT NULL DEFAULT '{}';
