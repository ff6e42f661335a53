-- Clients may name an execution by their own idempotency key (per tenant): a repeated key
-- returns the first execution instead of running the automation again.
ALTER TABLE executions ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX executions_tenant_idempotency_key_idx
    ON executions (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
