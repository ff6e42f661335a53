-- The latest execution that ran this one again (POST /v1/executions/{id}/rerun, or the bulk
-- re-run of failures): the link from a failure to its re-run, as the re-run's `source`
-- (`rerun:<id>`) links back. Written once the execution is finished, never by a worker: no
-- index, and nothing on the workers' path reads or writes it. The bulk re-run takes only
-- failures without one, setting it in the statement that records the re-run, so that two at
-- once run each failure again once.
ALTER TABLE executions ADD COLUMN rerun_id uuid;
