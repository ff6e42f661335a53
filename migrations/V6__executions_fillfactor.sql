-- Every execution row is updated twice after its insert (vendor-call mark, final state). Free
-- room in each page lets those be HOT updates: no new index entries, far less Postgres work.
ALTER TABLE executions SET (fillfactor = 70);
