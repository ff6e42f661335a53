-- A breaker for credentials the vendor keeps refusing: after three refusals in a row, executions
-- on the connection fail fast until breaker_open_until; then the next try decides. A success
-- or a passing connection test closes it.
ALTER TABLE connections ADD COLUMN auth_failures integer NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN breaker_open_until timestamptz;
