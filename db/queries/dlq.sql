-- Dead-letter entries. The store decides with package domain and writes here;
-- every status change names the statuses it may leave from, so a concurrent
-- change can never slip an entry through an edge the state machine refuses.

-- name: GetEntry :one
SELECT * FROM dlq_entries WHERE id = @id;

-- name: GetEntryStatuses :many
-- The status of each of the given entries that exists.
SELECT id, status FROM dlq_entries WHERE id = ANY(@ids::uuid[]);

-- name: ListEntries :many
-- Entries matching every given filter, in (created_at, id) order, after the
-- cursor when one is given.
SELECT * FROM dlq_entries
WHERE (sqlc.narg('service')::text IS NULL OR service = sqlc.narg('service')::text)
  AND (sqlc.narg('statuses')::text[] IS NULL OR status = ANY(sqlc.narg('statuses')::text[]))
  AND (sqlc.narg('domain')::text IS NULL OR domain = sqlc.narg('domain')::text)
  AND (sqlc.narg('failure_type')::text IS NULL OR failure_type = sqlc.narg('failure_type')::text)
  AND (sqlc.narg('created_after')::timestamptz IS NULL OR created_at >= sqlc.narg('created_after')::timestamptz)
  AND (sqlc.narg('created_before')::timestamptz IS NULL OR created_at < sqlc.narg('created_before')::timestamptz)
  AND (sqlc.narg('after_created_at')::timestamptz IS NULL
       OR (created_at, id) > (sqlc.narg('after_created_at')::timestamptz, sqlc.narg('after_id')::uuid))
ORDER BY created_at, id
LIMIT @max_rows;

-- name: CountEntries :one
-- How many entries match every given filter.
SELECT count(*) FROM dlq_entries
WHERE (sqlc.narg('service')::text IS NULL OR service = sqlc.narg('service')::text)
  AND (sqlc.narg('statuses')::text[] IS NULL OR status = ANY(sqlc.narg('statuses')::text[]))
  AND (sqlc.narg('domain')::text IS NULL OR domain = sqlc.narg('domain')::text)
  AND (sqlc.narg('failure_type')::text IS NULL OR failure_type = sqlc.narg('failure_type')::text)
  AND (sqlc.narg('created_after')::timestamptz IS NULL OR created_at >= sqlc.narg('created_after')::timestamptz)
  AND (sqlc.narg('created_before')::timestamptz IS NULL OR created_at < sqlc.narg('created_before')::timestamptz);

-- name: CountByServiceStatus :many
SELECT service, status, count(*) AS n
FROM dlq_entries
GROUP BY service, status
ORDER BY service, status;

-- name: CountPending :one
SELECT count(*) FROM dlq_entries WHERE service = @service AND status = 'pending';

-- name: ServicesWithDueEntries :many
-- The services that have pending entries due at @now, for the continuous
-- replay: a service whose entries all wait for a later attempt is not named.
SELECT DISTINCT service FROM dlq_entries
WHERE status = 'pending' AND next_attempt_at <= @now
ORDER BY service;

-- name: NextAttemptAt :one
-- The earliest next_attempt_at among the service's pending entries; no row
-- when it has none.
SELECT next_attempt_at FROM dlq_entries
WHERE service = @service AND status = 'pending'
ORDER BY next_attempt_at
LIMIT 1;

-- name: ClaimBatch :many
-- Takes up to max_rows due pending entries of the service, critical first,
-- oldest first, skipping rows other claimers hold, and marks them replaying
-- under the lease, but only while fencing_token is the service's current,
-- unexpired lease (the lease row is share-locked for the statement).
WITH lease AS (
    SELECT l.holder, l.fencing_token
    FROM replay_leases l
    WHERE l.service = @service AND l.fencing_token = @fencing_token AND l.expires_at > @now::timestamptz
    FOR SHARE
), picked AS (
    SELECT d.id
    FROM dlq_entries d
    WHERE d.service = @service
      AND d.status = 'pending'
      AND d.next_attempt_at <= @now::timestamptz
      AND EXISTS (SELECT 1 FROM lease)
    ORDER BY d.priority_rank, d.created_at, d.id
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
)
UPDATE dlq_entries e
SET status = 'replaying',
    lease_owner = (SELECT holder FROM lease),
    fencing_token = @fencing_token,
    updated_at = @now::timestamptz
FROM picked
WHERE e.id = picked.id
RETURNING e.*;

-- name: ClaimEntries :many
-- Takes the given entries of the service for replay under the lease, when
-- their status is one of from_statuses (an operator's replay of chosen
-- entries), skipping rows other claimers hold; fenced like ClaimBatch.
WITH lease AS (
    SELECT l.holder, l.fencing_token
    FROM replay_leases l
    WHERE l.service = @service AND l.fencing_token = @fencing_token AND l.expires_at > @now::timestamptz
    FOR SHARE
), picked AS (
    SELECT d.id
    FROM dlq_entries d
    WHERE d.id = ANY(@ids::uuid[])
      AND d.service = @service
      AND d.status = ANY(@from_statuses::text[])
      AND EXISTS (SELECT 1 FROM lease)
    FOR UPDATE SKIP LOCKED
)
UPDATE dlq_entries e
SET status = 'replaying',
    lease_owner = (SELECT holder FROM lease),
    fencing_token = @fencing_token,
    next_attempt_at = @now::timestamptz,
    updated_at = @now::timestamptz
FROM picked
WHERE e.id = picked.id
RETURNING e.*;

-- name: CompleteEntries :many
-- Marks replayed the given entries that are replaying under fencing_token
-- while that token is their service's current, unexpired lease.
UPDATE dlq_entries e
SET status = 'replayed',
    resolution_type = 'auto_replay',
    resolved_at = @now::timestamptz,
    last_retry_at = @now::timestamptz,
    recommended_action = '',
    updated_at = @now::timestamptz
WHERE e.id = ANY(@ids::uuid[])
  AND e.status = 'replaying'
  AND e.fencing_token = @fencing_token
  AND EXISTS (
      SELECT 1 FROM replay_leases l
      WHERE l.service = e.service AND l.fencing_token = @fencing_token AND l.expires_at > @now::timestamptz
      FOR SHARE
  )
RETURNING e.id;

-- name: LockClaimedEntry :one
-- The entry, row-locked, if it is replaying under fencing_token and that token
-- is its service's current, unexpired lease (share-locked until commit).
SELECT e.*
FROM dlq_entries e
JOIN replay_leases l ON l.service = e.service
WHERE e.id = @id
  AND e.status = 'replaying'
  AND e.fencing_token = @fencing_token
  AND l.fencing_token = @fencing_token
  AND l.expires_at > @now::timestamptz
FOR UPDATE OF e FOR SHARE OF l;

-- name: ApplyAttemptOutcome :exec
-- Writes a settled attempt decided by domain.RetryPolicy.Settle.
UPDATE dlq_entries
SET status = @status,
    retry_count = @retry_count,
    last_retry_at = @last_retry_at,
    next_attempt_at = coalesce(sqlc.narg('next_attempt_at')::timestamptz, next_attempt_at),
    last_error = @last_error,
    resolution_type = @resolution_type,
    recommended_action = @recommended_action,
    resolved_at = @resolved_at,
    error_history = error_history || @append_errors::jsonb,
    updated_at = @now::timestamptz
WHERE id = @id;

-- name: RescueExpired :many
-- Puts back to pending every replaying entry whose claim's lease is no longer
-- current (released, expired or superseded), due at once.
UPDATE dlq_entries e
SET status = 'pending',
    next_attempt_at = @now::timestamptz,
    recommended_action = 'replay',
    updated_at = @now::timestamptz
WHERE e.status = 'replaying'
  AND NOT EXISTS (
      SELECT 1 FROM replay_leases l
      WHERE l.service = e.service AND l.fencing_token = e.fencing_token AND l.expires_at > @now::timestamptz
  )
RETURNING e.id, e.service;

-- name: ReturnClaimed :many
-- Puts back to pending the entries still replaying under fencing_token (the
-- holder releases its lease).
UPDATE dlq_entries
SET status = 'pending',
    next_attempt_at = @now::timestamptz,
    updated_at = @now::timestamptz
WHERE service = @service AND status = 'replaying' AND fencing_token = @fencing_token
RETURNING id;

-- name: RequeueEntry :one
-- An operator requeues an entry: pending, due now, with a fresh set of
-- attempts (the error history is kept).
UPDATE dlq_entries
SET status = 'pending',
    retry_count = 0,
    next_attempt_at = @now::timestamptz,
    recommended_action = 'replay',
    resolution_type = '',
    resolved_at = NULL,
    updated_at = @now::timestamptz
WHERE id = @id AND status = ANY(@from_statuses::text[])
RETURNING *;

-- name: CloseEntry :one
-- An operator closes an entry (resolved, rejected, archived,
-- permanently_failed) with a resolution and a note.
UPDATE dlq_entries
SET status = @status,
    resolution_type = @resolution_type,
    resolution_note = @resolution_note,
    resolved_at = @now::timestamptz,
    recommended_action = '',
    updated_at = @now::timestamptz
WHERE id = @id AND status = ANY(@from_statuses::text[])
RETURNING *;

-- name: SetEntryStatus :one
-- An operator moves an entry between live statuses (reviewing,
-- requires_review).
UPDATE dlq_entries
SET status = @status,
    updated_at = @now::timestamptz
WHERE id = @id AND status = ANY(@from_statuses::text[])
RETURNING *;

-- name: ExpireEntries :many
-- Retention: entries past expires_at whose status is one of from_statuses
-- become expired (ttl_expired), at most max_rows at a time.
WITH due AS (
    SELECT d.id FROM dlq_entries d
    WHERE d.expires_at <= @now::timestamptz AND d.status = ANY(@from_statuses::text[])
    ORDER BY d.expires_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
)
UPDATE dlq_entries e
SET status = 'expired',
    resolution_type = 'ttl_expired',
    resolved_at = @now::timestamptz,
    updated_at = @now::timestamptz
FROM due
WHERE e.id = due.id
RETURNING e.id, e.service;

-- name: DeleteExpiredTerminal :execrows
-- Retention: deletes at most max_rows terminal entries whose expires_at is
-- before cutoff, oldest first, skipping rows others hold.
DELETE FROM dlq_entries
WHERE id IN (
    SELECT d.id FROM dlq_entries d
    WHERE d.expires_at < @cutoff
      AND d.status IN ('replayed', 'resolved', 'rejected', 'archived', 'expired', 'permanently_failed')
    ORDER BY d.expires_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
);

-- name: MarkSLABreached :many
-- Flags the pending entries of a domain created at or before created_before
-- that are not flagged yet.
UPDATE dlq_entries
SET sla_breached_at = @now::timestamptz, updated_at = @now::timestamptz
WHERE domain = @domain
  AND status = 'pending'
  AND sla_breached_at IS NULL
  AND created_at <= @created_before
RETURNING id, service;

-- name: LockEntry :one
-- The entry, row-locked until the transaction ends.
SELECT * FROM dlq_entries WHERE id = @id FOR UPDATE;
