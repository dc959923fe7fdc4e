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
)
