-- A staff account's department (hub/catalog): a developer acts only on its department's apps and
-- guides. Empty for accounts not bound to one.
ALTER TABLE idp_accounts ADD COLUMN department TEXT NOT NULL DEFAULT '';
