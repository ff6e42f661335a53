-- Tokens issued through the API (not only by the CLI): who issued and who revoked each, when
-- it stops working by itself, and when it was last used (at most once a minute, so that a
-- busy service token costs no write per request) — what an admin needs to retire tokens.
ALTER TABLE api_tokens
    ADD COLUMN created_by   uuid REFERENCES api_tokens(id) ON DELETE SET NULL,
    ADD COLUMN expires_at   timestamptz,
    ADD COLUMN last_used_at timestamptz,
    ADD COLUMN revoked_by   uuid REFERENCES api_tokens(id) ON DELETE SET NULL;

CREATE INDEX api_tokens_by_tenant ON api_tokens (tenant_id, created_at DESC, id DESC);

-- Who changed what: one row per change of configuration, written in the transaction of the
-- change itself, so that no change lands without its record. The actor and the target are
-- copied by id and name, not referenced: the record outlives what it names.
CREATE TABLE audit_events (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    uuid,
    actor_name  text,
    actor_role  text,
    action      text NOT NULL,
    target_kind text NOT NULL CHECK (target_kind IN ('connection', 'automation', 'token')),
    target_id   uuid NOT NULL,
    target_name text NOT NULL,
    -- What changed, by field name and value; never a secret's value.
    detail      jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_events_by_time ON audit_events (tenant_id, at DESC, id DESC);
CREATE INDEX audit_events_by_target ON audit_events (tenant_id, target_id, at DESC, id DESC);

-- A record is never rewritten (deleting old ones, for retention, stays possible).
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
