package store

import (
	"errors"

	"github.com/baldurfleet/baldur/internal/domain"
)

// Sentinel errors. Methods wrap them with %w and a message naming the entry,
// service or value concerned.
var (
	// ErrNotFound reports that the entry, lease or record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrDuplicate reports a dead letter that was not inserted because an
	// entry with its id, or a live entry with its (service, idempotency_key),
	// already exists. Ingest treats it as success.
	ErrDuplicate = errors.New("duplicate dead letter")
	// ErrLeaseLost reports a write fenced off: the fencing token is not the
	// service's current, unexpired lease, or the entry is no longer replaying
	// under it. Nothing was written.
	ErrLeaseLost = errors.New("replay lease lost")
	// ErrLeaseHeld reports that another holder's lease on the service has not
	// expired.
	ErrLeaseHeld = errors.New("replay lease held by another holder")
	// ErrInvalidTransition is domain.ErrInvalidTransition: the DLQ state
	// machine refuses the status change. Nothing was written.
	ErrInvalidTransition = domain.ErrInvalidTransition
	// ErrInvalidEntry reports a dead letter that cannot be stored as given
	// (missing id or service, malformed id or JSON, unknown domain or
	// priority, negative counters, a value PostgreSQL refuses: a NUL, an
	// unpaired surrogate, bytes that are not UTF-8, or any SQLSTATE class 22
	// or 54 error of the insert). Retrying it can never succeed.
	ErrInvalidEntry = errors.New("invalid dead-letter entry")
	// ErrInvalidArgument reports an argument out of range (a limit, a TTL, a
	// cursor, a holder name).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNoAuditKey reports an audit append or verification by a store
	// given no audit key (WithAuditKey).
	ErrNoAuditKey = errors.New("no audit key: the audit log is keyed; give the key file (--audit-key-file or $BALDUR_AUDIT_KEY_FILE) or $BALDUR_AUDIT_KEY")
)
