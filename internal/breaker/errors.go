package breaker

import "errors"

// Sentinel errors of the breaker-worker.
var (
	// ErrConflict reports a compare-and-set that kept losing to other writers
	// of the same breaker key.
	ErrConflict = errors.New("breaker: too many concurrent writers")
	// ErrBadState reports a breaker value in the KV bucket that cannot be
	// decoded; the key is left untouched for an operator to inspect.
	ErrBadState = errors.New("breaker: undecodable breaker state")
	// ErrBreakerCap reports an input that would create a new breaker while
	// the fleet already holds Config.MaxBreakers live breakers; the input
	// is rejected (code breaker_cap) and nothing is written.
	ErrBreakerCap = errors.New("breaker: breaker cap reached")
)

// Errors of the Worker.
var (
	// ErrInvalidWorkerConfig reports a Worker Config with a missing or
	// out-of-range field.
	ErrInvalidWorkerConfig = errors.New("breaker: invalid worker config")
	// ErrNotStarted reports Stop on a Worker that was never started.
	ErrNotStarted = errors.New("breaker: worker not started")
	// ErrAlreadyStarted reports a second Start of a Worker.
	ErrAlreadyStarted = errors.New("breaker: worker already started")
	// errCrashed is returned inside the worker when a test hook simulated
	// a crash between the breaker write and the ack.
	errCrashed = errors.New("breaker: simulated crash")
)
