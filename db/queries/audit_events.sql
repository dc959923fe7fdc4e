-- name: AuditRecordByEventID :one
-- The audit record of an event (the replay-worker's audit consumer), by the
-- event's ce-id.
SELECT * FROM audit_log WHERE event_id = @event_id::uuid;

-- name: InsertAuditEventRecord :exec
-- Appends the record of an event; the caller holds the append lock and has
-- checked that the event has no record yet (the unique index backs that up).
INSERT INTO audit_log (seq, at, actor, action, subject, reason, details, prev_hash, hash, event_id)
VALUES (@seq, @at, @actor, @action, @subject, @reason, @details, @prev_hash, @hash, @event_id::uuid);
