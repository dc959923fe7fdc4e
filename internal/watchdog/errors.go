package watchdog

import "errors"

// Sentinel errors. Functions wrap them with %w and a message naming the value
// or duty concerned.
var (
	// ErrInvalidConfig reports a Config or Deps value that is missing or out
	// of range.
	ErrInvalidConfig = errors.New("watchdog: invalid config")
	// ErrNotLeader reports a tick asked of a watchdog that does not hold a
	// fresh leader lease; it did nothing.
	ErrNotLeader = errors.New("watchdog: not the leader")
	// ErrStarted reports a second Start.
	ErrStarted = errors.New("watchdog: already started")
	// ErrNotStarted reports Stop or Tick before Start.
	ErrNotStarted = errors.New("watchdog: not started")
	// ErrDuty reports that one or more duties of a tick failed; the error
	// names them.
	ErrDuty = errors.New("watchdog: duty failed")
)
