-- An automation's revision: one more with every change to its row, whoever makes it. The API
-- answers it as the automation's ETag and refuses a change sent with an If-Match naming an
-- older one (412 precondition_failed), so that an editor saving what they read an hour ago
-- cannot silently undo what another did since: resume an automation just paused, put back a
-- parameter table just changed. A trigger rather than each statement's own increment: no
-- writer, today's or tomorrow's, can forget it.
ALTER TABLE automations ADD COLUMN revision bigint NOT NULL DEFAULT 1;

CREATE FUNCTION next_automation_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- An update that changes nothing (an edit saving what was there) is no change: neither
    -- the revision nor the time of the last change moves.
    IF (to_jsonb(NEW) - 'revision' - 'updated_at') = (to_jsonb(OLD) - 'revision' - 'updated_at') THEN
        NEW.updated_at := OLD.updated_at;
        NEW.revision := OLD.revision;
    ELSE
        NEW.revision := OLD.revision + 1;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER automations_revision BEFORE UPDATE ON automations
    FOR EACH ROW EXECUTE FUNCTION next_automation_revision();
