-- The ledger records which published version ran, as history. Versions are immutable and never
-- deleted, and checking the reference cost every execution a lookup plus a FOR KEY SHARE lock
-- on its version's row — one hot row shared by every in-flight execution of an automation.
ALTER TABLE executions DROP CONSTRAINT executions_version_id_fkey;
