-- A retry due later than the worker will wait in-process is handed to a delay queue; each
-- hand-off increments retry_seq, and only the copy carrying the current number runs (a stale
-- copy — the original redelivered after a crash — is dropped).
ALTER TABLE executions ADD COLUMN retry_seq integer NOT NULL DEFAULT 0;
