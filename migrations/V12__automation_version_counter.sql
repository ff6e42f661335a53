-- Versions can be deleted from an automation's history, so the next version's number is no
-- longer max(number) + 1: deleting the latest version would hand its number to the next
-- publish, and two entries of one history would read "Version 3". The automation counts the
-- versions it ever published instead; a number is never given twice.
ALTER TABLE automations ADD COLUMN versions_published integer NOT NULL DEFAULT 0;

UPDATE automations a
   SET versions_published = v.max_number
  FROM (SELECT automation_id, max(number) AS max_number
          FROM automation_versions GROUP BY automation_id) v
 WHERE v.automation_id = a.id;
