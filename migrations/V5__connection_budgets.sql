-- Per-connection budgets across the fleet.
-- The most vendor calls in flight at once on the connection, over all workers (NULL: the
-- worker's AIC_WORKER_CONNECTION_CONCURRENCY).
ALTER TABLE connections ADD COLUMN max_concurrency integer
    CHECK (max_concurrency BETWEEN 1 AND 10000);
-- A cool-down every worker honours: no vendor call on the connection before throttled_until
-- (set from a vendor's Retry-After or quota), and why.
ALTER TABLE connections ADD COLUMN throttled_until timestamptz;
ALTER TABLE connections ADD COLUMN throttle_reason text;

-- Each worker's share of a connection's concurrency: leased for a few seconds and renewed
-- while in use, so a crashed worker's share comes back by itself.
CREATE TABLE connection_leases (
    connection_id uuid NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    worker_id     text NOT NULL,
    slots         integer NOT NULL,
    wanted        integer NOT NULL,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (connection_id, worker_id)
);
