package opsclient

import (
	"errors"
	"fmt"

	"github.com/baldurfleet/baldur/internal/store"
)

// Sentinel errors of the operator client. Every error a Client returns wraps
// one of them (or a context error), so callers map them to exit codes or HTTP
// statuses with errors.Is.
var (
	// ErrUnreachable reports that NATS, JetStream or the fleet's buckets
	// cannot be reached: the topology is missing or the server does not
	// answer.
	ErrUnreachable = errors.New("opsclient: fleet unreachable")
	// ErrRefused reports a command the fleet refused (a rejected event with
	// the command's ce-id). The error is a *RefusedError with the code and
	// the reason.
	ErrRefused = errors.New("opsclient: command refused")
	// ErrNotApplied reports a command that no worker applied before the
	// timeout.
	ErrNotApplied = errors.New("opsclient: command not applied")
	// ErrInvalid reports an argument refused before anything was sent or
	// written: a bad service name, a command or config value that breaks
	// the contract.
	ErrInvalid = errors.New("opsclient: invalid request")
	// ErrCorrupt reports a stored value that does not parse as the fleet
	// reads it (a config key written around the validation): nothing the
	// caller gave is wrong.
	ErrCorrupt = errors.New("opsclient: stored value invalid")
	// ErrNotFound reports a breaker, config key or dead letter that does not
	// exist.
	ErrNotFound = errors.New("opsclient: not found")
	// ErrConflict reports a write that lost a compare-and-set, or a DLQ
	// status change the entry cannot take (HTTP-like status 409).
	ErrConflict = errors.New("opsclient: conflict")
	// ErrNoReplayWorker reports that no replay-worker answers the DLQ
	// endpoints.
	ErrNoReplayWorker = errors.New("opsclient: no replay-worker answers the DLQ endpoints")
	// ErrDLQ reports any other error answer of a DLQ endpoint (400, 500,
	// 503); the error is an *APIError with the status code.
	ErrDLQ = errors.New("opsclient: DLQ endpoint error")
	// ErrNoDatabase reports an audit call on a Client built without an
	// audit store (the CLI's --database-url).
	ErrNoDatabase = errors.New("opsclient: no database configured")
	// ErrNoAuditKey reports an audit verification by a client whose store
	// has no audit key: the store's sentinel.
	ErrNoAuditKey = store.ErrNoAuditKey
	// ErrAuditBroken reports an audit log whose hash chain does not verify.
	ErrAuditBroken = errors.New("opsclient: audit chain broken")
)

// RefusedError is a command the fleet refused: the code and reason of the
// rejected event (baldur.event.rejected.<kind>) that carried its ce-id. It
// matches ErrRefused.
type RefusedError struct {
	// CommandID is the command's ce-id.
	CommandID string `json:"command_id"`
	// Code is the rejected event's code: kill_switch_on, invalid_command,
	// override_renewal_limit, or a decode error's code.
	Code string `json:"code"`
	// Reason is the rejected event's reason.
	Reason string `json:"reason"`
}

// Error returns "command <id> refused (<code>): <reason>".
func (e *RefusedError) Error() string {
	return fmt.Sprintf("command %s refused (%s): %s", e.CommandID, e.Code, e.Reason)
}

// Is reports whether target is ErrRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// APIError is an error answer of a DLQ endpoint: the micro error code (400,
// 404, 409, 500, 503) and message. It matches ErrNotFound (404), ErrConflict
// (409), ErrInvalid (400) or ErrDLQ (anything else).
type APIError struct {
	// Op is the endpoint.
	Op string `json:"op"`
	// Code is the status code of the Nats-Service-Error-Code header.
	Code int `json:"code"`
	// Message is the Nats-Service-Error header (the body's error).
	Message string `json:"message"`
}

// Error returns "dlq <op>: <code>: <message>".
func (e *APIError) Error() string {
	return fmt.Sprintf("dlq %s: %d: %s", e.Op, e.Code, e.Message)
}

// Is matches the sentinel of the status code.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == 404
	case ErrConflict:
		return e.Code == 409
	case ErrInvalid:
		return e.Code == 400
	case ErrDLQ:
		return e.Code != 404 && e.Code != 409 && e.Code != 400
	}
	return false
}
