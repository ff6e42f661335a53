-- A name is unique as a reader sees it, not byte for byte. "Create Lead" and "create lead",
-- "Café" written with a combining accent and with a precomposed one, a no-break space for a
-- space, full-width letters, a zero-width space inside a word: each pair was two automations
-- (or connections, or tenants) that a bot's step picker, the console's tiles and the audit
-- trail show as one name. The key a name is unique by: compatibility-normalised (NFKC: widths,
-- ligatures, no-break and other spaces), invisible format characters dropped, runs of white
-- space made one, trimmed, lower-cased by ICU's root locale whatever the database's own.
CREATE FUNCTION name_key(name text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
        SELECT btrim(regexp_replace(
            regexp_replace(
                lower(normalize(name, NFKC) COLLATE "und-x-icu"),
                '[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]',
                '', 'g'),
            '\s+', ' ', 'g'))
    $$;

-- Names saved before that already share a key keep the oldest as it is; each later one is
-- renamed with the end of its id (random, so unique), within the 200 characters a name holds,
-- and the renaming is in its tenant's audit trail, by the upgrade. One statement: the renames
-- and their records land together.
WITH clash AS (
    SELECT 'connection'::text AS kind, c.tenant_id, c.id, c.name AS old_name,
           rtrim(left(c.name, 189)) || ' (' || right(c.id::text, 8) || ')' AS new_name
    FROM connections c
    WHERE EXISTS (SELECT 1 FROM connections o
                  WHERE o.tenant_id = c.tenant_id AND name_key(o.name) = name_key(c.name)
                    AND (o.created_at, o.id) < (c.created_at, c.id))
    UNION ALL
    SELECT 'automation', a.tenant_id, a.id, a.name,
           rtrim(left(a.name, 189)) || ' (' || right(a.id::text, 8) || ')'
    FROM automations a
    WHERE EXISTS (SELECT 1 FROM automations o
                  WHERE o.tenant_id = a.tenant_id AND name_key(o.name) = name_key(a.name)
                    AND (o.created_at, o.id) < (a.created_at, a.id))
), connections_renamed AS (
    UPDATE connections c SET name = r.new_name, updated_at = now()
    FROM clash r WHERE r.kind = 'connection' AND r.id = c.id
), automations_renamed AS (
    UPDATE automations a SET name = r.new_name, updated_at = now()
    FROM clash r WHERE r.kind = 'automation' AND r.id = a.id
)
INSERT INTO audit_events (id, tenant_id, actor_id, actor_name, actor_role, action, target_kind,
                          target_id, target_name, detail)
    SELECT gen_random_uuid(), r.tenant_id, NULL, 'upgrade (V24)', 'operator',
           r.kind || '.updated', r.kind, r.id, r.new_name,
           jsonb_build_object('name', r.new_name, 'previous_name', r.old_name,
                              'reason', 'an older ' || r.kind || ' had the same name but for case, spacing or character forms')
    FROM clash r;

-- Tenants are named by operators, one per command: two that clash stop the upgrade here,
-- naming the key, for an operator to rename one by hand (no tenant's name is changed for it).
ALTER TABLE tenants DROP CONSTRAINT tenants_name_key;
CREATE UNIQUE INDEX tenants_name_key ON tenants (name_key(name));

ALTER TABLE connections DROP CONSTRAINT connections_tenant_id_name_key;
CREATE UNIQUE INDEX connections_tenant_id_name_key ON connections (tenant_id, name_key(name));

ALTER TABLE automations DROP CONSTRAINT automations_tenant_id_name_key;
CREATE UNIQUE INDEX automations_tenant_id_name_key ON automations (tenant_id, name_key(name));
