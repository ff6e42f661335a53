-- A Salesforce automation may name an external id field: its creates become upserts keyed by the
-- execution id, so a re-send after a crash or a lost answer cannot create a second record.
ALTER TABLE automations ADD COLUMN external_id_field text;
