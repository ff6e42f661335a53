-- An automation's own retry policy (a RetrySpec as JSON; NULL = the worker's defaults). It is
-- copied into each published version's definition, so a version keeps the policy it had.
ALTER TABLE automations ADD COLUMN retry jsonb;
