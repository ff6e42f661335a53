-- The cap on calls at once that a lease's holder keeps to on its connection: the connection's
-- own max_concurrency, or, for a connection without one, the worker's
-- AIC_WORKER_CONNECTION_CONCURRENCY. The control plane, which has no such setting, reads it
-- here to know the cap its own calls on an uncapped connection must keep to. NULL in the
-- control plane's own leases and in those of workers from before this column.
ALTER TABLE connection_leases ADD COLUMN cap integer;
