// Package store is Baldur's PostgreSQL repository: dead-letter entries, replay
// leases with fencing tokens, the hash-chained audit log and outcome rollups.
//
// It is hand-written over the queries sqlc generates into package dbsqlc and
// speaks only domain types. The store persists; package domain decides: every
// status change is checked against domain's DLQ state machine, replay attempts
// are settled with domain.RetryPolicy.Settle, and audit hashes come from
// domain.ChainAuditRecord. Each status change is a single statement (or a
// transaction holding the row lock) whose WHERE clause names the statuses the
// change may leave from, so concurrent writers cannot move an entry along an
// edge the state machine refuses.
//
// # Fencing
//
// A replay-worker takes a service's lease (AcquireLease) and gets a fencing
// token larger than any issued before. ClaimBatch, Complete, Settle, Fail and
// Escalate carry the token and write only while it is the service's current,
// unexpired lease and, for settling, while the entry is still replaying under
// it; otherwise they write nothing and return an error wrapping ErrLeaseLost.
// The lease row is share-locked by each fenced statement, so a new holder's
// acquisition waits until a fenced write in flight has committed.
//
// Errors wrap the sentinels in errors.go; test them with errors.Is.
package store
