-- A service token may be limited to some automations (a bot that runs three of them): it then
-- runs them, reads their executions and registers their deployables, and nothing else. A
-- token not `scoped` reaches every automation of its tenant; a scoped one whose automations
-- were all deleted reaches none.
ALTER TABLE api_tokens ADD COLUMN scoped boolean NOT NULL DEFAULT false;
CREATE TABLE api_token_automations (
    token_id      uuid NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
    automation_id uuid NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
    PRIMARY KEY (token_id, automation_id)
);
CREATE INDEX api_token_automations_automation_idx ON api_token_automations (automation_id);
