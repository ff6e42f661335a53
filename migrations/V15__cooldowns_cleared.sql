-- An admin may end a connection's cool-downs before the vendor's time (its limit was raised,
-- its quota bought up): when they last did, so that every worker drops the holds it keeps in
-- memory from before that moment at its next lease renewal, and keeps the ones the vendor
-- imposed after.
ALTER TABLE connections ADD COLUMN cooldowns_cleared_at timestamptz;
