package process

import "errors"

// Sentinel errors of the process configuration.
var (
	// ErrInvalidConfig reports a flag or environment value that is out of
	// range or malformed. The message names the flag and its environment
	// twin.
	ErrInvalidConfig = errors.New("invalid configuration")
	// ErrUnreachable reports a dependency (NATS) that could not be reached
	// within the connect timeout.
	ErrUnreachable = errors.New("unreachable")
)
