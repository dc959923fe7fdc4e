-- Outcome rollups for the error budget.

-- name: AddRollups :exec
-- Adds the counts to each (service, minute) row, creating it when missing.
-- A (service, minute) pair must appear at most once per call.
INSERT INTO outcome_rollups AS r (service, minute, successes, failures, slow_calls)
SELECT unnest(@services::text[]), unnest(@minutes::timestamptz[]),
       unnest(@successes::bigint[]), unnest(@failures::bigint[]), unnest(@slow_calls::bigint[])
ON CONFLICT (service, minute) DO UPDATE
SET successes = r.successes + excluded.successes,
    failures = r.failures + excluded.failures,
    slow_calls = r.slow_calls + excluded.slow_calls;

-- name: SumRollups :many
-- Per-service totals over the minutes at or after since.
SELECT service,
       sum(successes)::bigint AS successes,
       sum(failures)::bigint AS failures,
       sum(slow_calls)::bigint AS slow_calls
FROM outcome_rollups
WHERE minute >= @since
GROUP BY service
ORDER BY service;

-- name: DeleteRollupsBefore :execrows
DELETE FROM outcome_rollups WHERE minute < @cutoff;
