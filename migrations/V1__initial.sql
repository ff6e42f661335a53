-- The first schema: tenants, tokens, connections, automations and their immutable versions,
-- and the execution ledger. Every configuration row carries its tenant; queries always filter
-- on it, so nothing crosses tenants.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        text NOT NULL,
    role        text NOT NULL CHECK (role IN ('admin', 'editor', 'viewer', 'service')),
    -- SHA-256 of the token: a leaked table does not leak usable tokens.
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE connections (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name            text NOT NULL,
    app             text NOT NULL,
    domain          text NOT NULL,
    auth_type       text NOT NULL,
    -- AES-256-GCM sealed secret fields; key_id names the configured key that sealed them.
    secret_key_id   text NOT NULL,
    secret_nonce    bytea NOT NULL,
    secret_ciphertext bytea NOT NULL,
    -- Bumped whenever the secrets change, so cached tokens of the old secret are dropped.
    secret_version  integer NOT NULL DEFAULT 1,
    status          text NOT NULL DEFAULT 'untested'
                    CHECK (status IN ('untested', 'connected', 'failing', 'needs_reauthorization')),
    status_detail   text,
    status_checked_at timestamptz,
    created_by      uuid REFERENCES api_tokens(id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE automations (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    connection_id   uuid NOT NULL REFERENCES connections(id),
    app             text NOT NULL,
    action          text NOT NULL,
    name            text NOT NULL,
    description     text NOT NULL DEFAULT '',
    -- The draft parameter table; a publish freezes it into automation_versions.
    parameters      jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'paused')),
    published_version_id uuid,
    created_by      uuid REFERENCES api_tokens(id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE automation_versions (
    id              uuid PRIMARY KEY,
    automation_id   uuid NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
    tenant_id       uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    number          integer NOT NULL,
    name            text NOT NULL,
    -- The full AutomationDefinition (proto), exactly as published.
    definition      jsonb NOT NULL,
    output          jsonb NOT NULL,
    published_by    uuid REFERENCES api_tokens(id) ON DELETE SET NULL,
    published_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (automation_id, number)
);

ALTER TABLE automations
    ADD CONSTRAINT automations_published_version_fk
    FOREIGN KEY (published_version_id) REFERENCES automation_versions(id);

-- A published definition never changes: an execution records the version it ran, and that
-- record must keep meaning what it meant. Only the display name may be edited.
CREATE FUNCTION forbid_definition_change() RETURNS trigger AS $$
BEGIN
    IF NEW.definition IS DISTINCT FROM OLD.definition
       OR NEW.output IS DISTINCT FROM OLD.output
       OR NEW.number IS DISTINCT FROM OLD.number
       OR NEW.automation_id IS DISTINCT FROM OLD.automation_id THEN
        RAISE EXCEPTION 'automation versions are immutable';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER automation_versions_immutable
    BEFORE UPDATE ON automation_versions
    FOR EACH ROW EXECUTE FUNCTION forbid_definition_change();

-- The execution ledger. No foreign keys on tenant/automation: a request naming an unknown
-- automation still gets a ledger row, so a redelivery is answered from here.
CREATE TABLE executions (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL,
    automation_id   uuid NOT NULL,
    version_id      uuid REFERENCES automation_versions(id),
    status          text NOT NULL
                    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'unknown_outcome')),
    parameters      jsonb NOT NULL DEFAULT '{}',
    -- The ExecutionResultV1 as published, so a redelivery re-publishes the same bytes.
    result          jsonb,
    error_code      text,
    attempts        integer NOT NULL DEFAULT 0,
    deliveries      integer NOT NULL DEFAULT 0,
    source          text,
    enqueued_at     timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    -- Set just before the first vendor call: a redelivery that finds it set with no outcome
    -- knows the request may have reached the vendor and must not re-send it blindly.
    vendor_call_started_at timestamptz,
    finished_at     timestamptz
);

CREATE INDEX executions_tenant_automation_idx ON executions (tenant_id, automation_id, enqueued_at DESC);
