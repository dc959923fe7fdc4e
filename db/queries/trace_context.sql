-- name: SetTraceContexts :exec
-- Records the trace context of entries that have none yet.
UPDATE dlq_entries AS e
SET trace_context = t.trace_context
FROM (SELECT unnest(@ids::uuid[]) AS id, unnest(@trace_contexts::text[]) AS trace_context) AS t
WHERE e.id = t.id AND e.trace_context IS NULL;

-- name: TraceContexts :many
SELECT id, trace_context::text AS trace_context
FROM dlq_entries
WHERE id = ANY(@ids::uuid[]) AND trace_context IS NOT NULL;
