// Package domain holds Baldur's rules as pure code: the circuit breaker as a fold
// over outcome reports, commands, permit requests and ticks; breaker configuration
// with its defaults, validation and overrides; dead-letter statuses and their
// transitions; the governance decision; the adaptive replay batch sizer and the
// priority order.
//
// Nothing in this package performs I/O or reads the wall clock: time is always an
// argument. The workers (internal/breaker, internal/replay, internal/watchdog) load
// state, call these functions and persist what they return.
package domain
