package domain

import "errors"

// Sentinel errors of the breaker rules and breaker configuration. Functions wrap
// them with %w and a message that names the offending field or value, so callers
// test with errors.Is and show err.Error().
var (
	// ErrInvalidConfig is wrapped by every Config field that fails Validate and by
	// a config object that cannot be decoded.
	ErrInvalidConfig = errors.New("invalid breaker config")
	// ErrUnknownConfigField reports a config object naming a field that Config
	// does not have. The message lists every unknown name.
	ErrUnknownConfigField = errors.New("unknown breaker config field")

	// ErrInvalidCommand reports a breaker command the fold cannot apply: an
	// unknown action, a manual action without actor or reason, or an override
	// that would make the effective config invalid.
	ErrInvalidCommand = errors.New("invalid breaker command")
	// ErrUnknownInput reports an Input whose Kind is none of the input kinds.
	ErrUnknownInput = errors.New("unknown breaker input kind")
	// ErrInvalidBreaker reports a breaker state that breaks an invariant
	// (unknown state or mode, a forced mode that disagrees with the state,
	// more permits issued than the half-open period allows).
	ErrInvalidBreaker = errors.New("invalid breaker state")
	// ErrInvalidReport reports an outcome report with negative counts or more
	// trailing failures than failures.
	ErrInvalidReport = errors.New("invalid outcome report")
	// ErrKillSwitch reports a manual breaker action refused because the kill
	// switch is on and the command did not set override_kill_switch.
	ErrKillSwitch = errors.New("manual breaker action refused: kill switch is on")
	// ErrOverrideRenewalLimit reports an override command that would renew an
	// active override more than MaxOverrideRenewals times.
	ErrOverrideRenewalLimit = errors.New("threshold override renewal limit reached")

	// ErrNoChange reports a command that was valid but had nothing to do (the
	// breaker is already in the requested mode, there is no override to clear).
	// It is a no-op, not a failure: nothing is written and no event is emitted.
	ErrNoChange = errors.New("breaker already in the requested condition")
	// ErrNotOpen reports a half_open command (trigger recovery_timeout) for a
	// breaker that is not OPEN.
	ErrNotOpen = errors.New("breaker is not open")
	// ErrModeNotAuto reports a half_open command for a breaker whose mode is not
	// auto: only the automatic rules recover a breaker.
	ErrModeNotAuto = errors.New("breaker mode is not auto")
	// ErrRecoveryNotDue reports a half_open command that arrived before the
	// breaker's recovery_at.
	ErrRecoveryNotDue = errors.New("breaker recovery is not due yet")
	// ErrNotStuck reports a half_open command (trigger stuck_half_open) for a
	// breaker whose half-open window is not full or not older than
	// half_open_stuck_timeout.
	ErrNotStuck = errors.New("breaker half-open window is not stuck")
)
