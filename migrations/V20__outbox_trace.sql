-- The caller's trace context of a request in the outbox (W3C `traceparent` and `tracestate`,
-- as the API published it), so that a control plane publishing it again carries it on: the
-- execution still shows in the trace of the flow or bot that asked for it.
ALTER TABLE execution_outbox ADD COLUMN traceparent text, ADD COLUMN tracestate text;
