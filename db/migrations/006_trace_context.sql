-- compatibility: expand
--
-- The W3C trace context (traceparent) a dead letter was ingested in, so that
-- its replay continues the trace of the failed call: the replay-worker
-- injects it into the replay delivery's headers. NULL when the dead letter
-- arrived without one. Written once, after the entry's insert; a lost write
-- only costs the trace its continuation.
ALTER TABLE dlq_entries ADD COLUMN trace_context text;

---- create above / drop below ----

ALTER TABLE dlq_entries DROP COLUMN IF EXISTS trace_context;
