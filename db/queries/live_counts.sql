-- Live entries per service (dlq_live_counts), for the ingest's per-service
-- bound. InsertEntriesCounted adds what it inserts; RecountLive* set the exact
-- count. Rows are locked in service order everywhere, so that two writers
-- never wait for each other in a cycle.

-- name: InsertEntriesCounted :many
-- Inserts new pending entries, one row per array position, and adds them to
-- their services' live counts in the same statement. Idempotent on id and on
-- (service, idempotency_key) among live entries, also within the batch: a
-- conflicting row is skipped. Returns the ids that were inserted.
WITH inserted AS (
    INSERT INTO dlq_entries (
        id, service, domain, failure_type, operation, idempotency_key,
        entity_type, entity_id, request, error_code, error_message, priority,
        metadata, status, max_retries, next_attempt_at, recommended_action,
        created_at, updated_at, expires_at
    )
    SELECT
        unnest(@ids::uuid[]),
        unnest(@services::text[]),
        unnest(@domains::text[]),
        unnest(@failure_types::text[]),
        unnest(@operations::text[]),
        unnest(@idempotency_keys::text[]),
        unnest(@entity_types::text[]),
        unnest(@entity_ids::text[]),
        unnest(@requests::jsonb[]),
        unnest(@error_codes::text[]),
        unnest(@error_messages::text[]),
        unnest(@priorities::text[]),
        unnest(@metadata::jsonb[]),
        'pending',
        unnest(@max_retries::integer[]),
        unnest(@next_attempt_ats::timestamptz[]),
        unnest(@recommended_actions::text[]),
        unnest(@created_ats::timestamptz[]),
        unnest(@updated_ats::timestamptz[]),
        unnest(@expires_ats::timestamptz[])
    ON CONFLICT DO NOTHING
    RETURNING id, service
), counted AS (
    INSERT INTO dlq_live_counts AS c (service, live)
    SELECT i.service, count(*) FROM inserted i GROUP BY i.service ORDER BY i.service
    ON CONFLICT (service) DO UPDATE SET live = c.live + excluded.live
)
SELECT id FROM inserted;

-- name: LiveCounts :many
-- The live counts of the given services that have a row.
SELECT service, live, recounted_at FROM dlq_live_counts WHERE service = ANY(@services::text[]);

-- name: EnsureLiveCounts :exec
-- Makes the rows of the given services (sorted) that do not have one, so
-- that LockLiveCounts can lock them.
INSERT INTO dlq_live_counts (service, live)
SELECT unnest(@services::text[]), 0
ON CONFLICT (service) DO NOTHING;

-- name: LockLiveCounts :exec
-- Locks the rows of the given services, in service order, until the end of
-- the transaction: an insert that has not committed yet finishes first, and
-- one that starts later waits, so that the count that follows misses none.
SELECT service FROM dlq_live_counts
WHERE service = ANY(@services::text[])
ORDER BY service
FOR UPDATE;

-- name: RecountLiveCounts :many
-- Sets the live count of the given services (locked) to the number of their
-- live entries, counted now.
UPDATE dlq_live_counts c
SET live = (
        SELECT count(*) FROM dlq_entries d
        WHERE d.service = c.service
          AND d.status IN ('pending', 'replaying', 'requires_review', 'reviewing')
    ),
    recounted_at = @now::timestamptz
WHERE c.service = ANY(@services::text[])
RETURNING c.service, c.live;

-- name: StoredEntryIDs :many
-- Of the given entries (ids[i] of services[i] with idempotency_keys[i]), the
-- ids of those already stored: an entry with the same id, or a live entry of
-- the same service with the same non-empty idempotency key.
SELECT c.id::uuid AS id
FROM (
    SELECT unnest(@ids::uuid[]) AS id,
           unnest(@services::text[]) AS service,
           unnest(@idempotency_keys::text[]) AS idempotency_key
) c
WHERE EXISTS (SELECT 1 FROM dlq_entries d WHERE d.id = c.id)
   OR (c.idempotency_key <> '' AND EXISTS (
        SELECT 1 FROM dlq_entries d
        WHERE d.service = c.service
          AND d.idempotency_key = c.idempotency_key
          AND d.idempotency_key <> ''
          AND d.status IN ('pending', 'replaying', 'requires_review', 'reviewing')
   ));
