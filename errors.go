package baldur

import "errors"

// Errors returned by the SDK. They are wrapped with the service and the cause
// (test with errors.Is).
var (
	// ErrOpen reports a call refused because the service's breaker is open
	// (or forced open).
	ErrOpen = errors.New("baldur: circuit breaker is open")
	// ErrNoPermit reports a call refused because the breaker is half-open
	// and no probe permit was granted to this node.
	ErrNoPermit = errors.New("baldur: no half-open permit")
	// ErrDownstream reports a call refused by a downstream checker
	// registered with RegisterDownstreamChecker.
	ErrDownstream = errors.New("baldur: refused by a downstream checker")
	// ErrEmergency reports a call refused because the fleet's emergency level
	// sheds the service's tier (LEVEL_1 tier 3, LEVEL_2 tiers 2 and 3, LEVEL_3
	// also half of tier 1; the tier is the service's config field "tier").
	ErrEmergency = errors.New("baldur: shed by the emergency level")
	// ErrClosed reports use of a Client after Close.
	ErrClosed = errors.New("baldur: client closed")
	// ErrInvalidService reports a service name the contract refuses
	// (^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$).
	ErrInvalidService = errors.New("baldur: invalid service name")
	// ErrInvalidOption reports an option value out of range, or an option
	// that does not apply to the call it was given to.
	ErrInvalidOption = errors.New("baldur: invalid option")
	// ErrInvalidDeadLetter reports a FailedOperation the contract refuses;
	// nothing was sent.
	ErrInvalidDeadLetter = errors.New("baldur: invalid dead letter")
	// ErrPublish reports a message the stream did not acknowledge.
	ErrPublish = errors.New("baldur: publish failed")
	// ErrBacklogFull is returned, wrapped with ErrPublish, by DeadLetter
	// when BALDUR_DLQ refuses the dead letter because the service's backlog
	// waiting for the ingest, or the stream, is at its bound: the dead
	// letter was not stored, keep it and try again later.
	ErrBacklogFull = errors.New("baldur: dead-letter backlog full")
)

// permanentError marks a replay handler's error as not worth retrying.
type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

// Permanent wraps err so that a replay handler returning it answers
// {"ok": false, "retryable": false}: the dead letter goes to review instead
// of being retried. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// refusal reports whether err is a refusal of a call by Baldur (ErrOpen,
// ErrNoPermit, ErrDownstream or ErrEmergency), as opposed to a failure of the
// call.
func refusal(err error) bool {
	return errors.Is(err, ErrOpen) || errors.Is(err, ErrNoPermit) || errors.Is(err, ErrDownstream) ||
		errors.Is(err, ErrEmergency)
}

// IsRefusal reports whether err says that Baldur refused the call (the
// breaker is open, no half-open permit, or a downstream checker said no),
// rather than the call failing.
func IsRefusal(err error) bool { return refusal(err) }
