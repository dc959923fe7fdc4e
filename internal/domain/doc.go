// Package domain holds Baldur's rules as pure code: the circuit breaker as a fold
// over outcome reports, commands, permit requests and ticks (Breaker.Apply);
// breaker configuration with its defaults, validation, layering and overrides;
// dead-letter statuses and their transitions; the settlement of a replay attempt
// with retry backoff; the governance decision (kill switch, emergency level,
// error budget); the adaptive replay batch sizer; the priority order; replay
// leases; and the audit log's hash chain.
//
// Nothing in this package performs I/O or reads the wall clock: time is always an
// argument, and randomness (retry jitter) is passed in. The workers
// (internal/breaker, internal/replay, internal/watchdog) load state, call these
// functions and persist what they return.
package domain
