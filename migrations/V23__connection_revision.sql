-- A connection's revision, as an automation's (V22): its ETag, for If-Match. It moves only with
-- what admins and editors configure — the name, the domain, the auth type, the cap, a new
-- version of the secrets — not with what the system changes under everyone all day (the
-- status a test or an execution finds, cool-downs, the auth breaker, a vendor's rotated
-- refresh token, a key rotation): an edit made over those undoes nothing, and would be refused
-- for nothing.
ALTER TABLE connections ADD COLUMN revision bigint NOT NULL DEFAULT 1;

CREATE FUNCTION next_connection_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.revision := OLD.revision + 1;
    RETURN NEW;
END
$$;

CREATE TRIGGER connections_revision BEFORE UPDATE ON connections FOR EACH ROW
    WHEN ((NEW.name, NEW.domain, NEW.auth_type, NEW.max_concurrency, NEW.secret_version)
          IS DISTINCT FROM (OLD.name, OLD.domain, OLD.auth_type, OLD.max_concurrency, OLD.secret_version))
    EXECUTE FUNCTION next_connection_revision();
