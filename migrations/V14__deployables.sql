-- The digital-adoption items (flows, bot steps, launchers) that run an automation, registered
-- by the platform that deploys them, each with a link to open it: what a connection's and an
-- automation's tiles count, and what keeps an automation in use from being deleted (hence no
-- cascade from automations). One item is one use of one automation; the platform's own id,
-- unique within its system, makes registering it again an update, not a second item.
CREATE TABLE deployables (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    automation_id uuid NOT NULL REFERENCES automations(id),
    kind          text NOT NULL CHECK (kind IN ('flow', 'bot_step', 'launcher', 'other')),
    system        text NOT NULL,
    external_id   text NOT NULL,
    name          text NOT NULL,
    link          text NOT NULL,
    registered_by uuid REFERENCES api_tokens(id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, system, external_id)
);

CREATE INDEX deployables_by_automation ON deployables (automation_id);

ALTER TABLE audit_events DROP CONSTRAINT audit_events_target_kind_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_target_kind_check
    CHECK (target_kind IN ('connection', 'automation', 'token', 'deployable'));
