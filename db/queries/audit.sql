-- The audit log's hash chain. Appends are serialized by a transaction-scoped
-- advisory lock held from reading the last record until the insert commits.

-- name: LockAuditAppend :exec
SELECT pg_advisory_xact_lock(@lock_key::bigint);

-- name: LastAuditRecord :one
SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1;

-- name: InsertAuditRecord :exec
INSERT INTO audit_log (seq, at, actor, action, subject, reason, details, prev_hash, hash)
VALUES (@seq, @at, @actor, @action, @subject, @reason, @details, @prev_hash, @hash);

-- name: ListAuditRecords :many
-- Records after after_seq in seq order, at most max_rows.
SELECT * FROM audit_log WHERE seq > @after_seq ORDER BY seq LIMIT @max_rows;

-- name: ListAuditRecordsBySubject :many
-- A subject's records after after_seq in seq order, at most max_rows.
SELECT * FROM audit_log
WHERE subject = @subject AND seq > @after_seq
ORDER BY seq
LIMIT @max_rows;
