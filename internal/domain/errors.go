package domain

import "errors"

// Sentinel errors of the domain rules. Functions wrap them with %w and a message
// that names the offending field or value, so callers test with errors.Is and
// show err.Error().

// Breaker rules and breaker configuration.
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

// Dead letters, retry, governance, batch sizing, priority and audit.
var (
	// ErrUnstorable reports a value PostgreSQL refuses to store although it
	// is valid JSON or text to Go: a NUL, an unpaired surrogate, bytes that
	// are not UTF-8 (see CheckStorableJSON).
	ErrUnstorable = errors.New("value PostgreSQL cannot store")
	// ErrUnknownDLQStatus reports a status that is not one of DLQStatuses.
	ErrUnknownDLQStatus = errors.New("unknown dead-letter status")
	// ErrInvalidTransition reports a status change the DLQ state machine refuses.
	ErrInvalidTransition = errors.New("invalid dead-letter status transition")
	// ErrInvalidPriority reports a priority that is not critical, normal or low.
	ErrInvalidPriority = errors.New("invalid priority")
	// ErrInvalidFailureDomain reports a failure domain that is not one of
	// FailureDomains.
	ErrInvalidFailureDomain = errors.New("invalid failure domain")
	// ErrInvalidRetryPolicy reports a RetryPolicy that fails Validate.
	ErrInvalidRetryPolicy = errors.New("invalid retry policy")
	// ErrInvalidAttempt reports an Attempt (or the entry it settles) that
	// cannot be settled.
	ErrInvalidAttempt = errors.New("invalid replay attempt")

	// ErrInvalidEmergencyLevel reports an emergency level outside 0..3.
	ErrInvalidEmergencyLevel = errors.New("invalid emergency level")
	// ErrInvalidSLOTarget reports an SLO target outside (0, 1).
	ErrInvalidSLOTarget = errors.New("invalid SLO target")
	// ErrInvalidSLOWindow reports an SLO window outside
	// [MinSLOWindow, MaxSLOWindow].
	ErrInvalidSLOWindow = errors.New("invalid SLO window")
	// ErrInvalidCell reports a cell id, cell configuration or cell-scoped
	// breaker name that breaks the cell rules.
	ErrInvalidCell = errors.New("invalid cell")
	// ErrInvalidCallCounts reports negative call counts, or more failed calls
	// than calls, given to the error-budget computation.
	ErrInvalidCallCounts = errors.New("invalid call counts")
	// ErrGovernanceBlocked is wrapped by every refusal that governance decides
	// (kill switch, emergency level, error budget).
	ErrGovernanceBlocked = errors.New("blocked by governance")
	// ErrCommandExpired reports a command folded after its valid_until: it
	// is refused, never applied late.
	ErrCommandExpired = errors.New("command expired")
	// ErrKillSwitchOn reports a refusal because the kill switch is on.
	ErrKillSwitchOn = errors.New("kill switch is on")
	// ErrEmergencyLevelBlocks reports a refusal because of the emergency level.
	ErrEmergencyLevelBlocks = errors.New("emergency level blocks automation")
	// ErrErrorBudgetExhausted reports a refusal because the error budget is
	// below the gate.
	ErrErrorBudgetExhausted = errors.New("error budget exhausted")

	// ErrInvalidBatchSizing reports BatchSizing parameters that fail Validate.
	ErrInvalidBatchSizing = errors.New("invalid batch sizing")

	// ErrInvalidAuditDetails reports audit details that are not valid JSON
	// or hold a number that cannot be canonicalized.
	ErrInvalidAuditDetails = errors.New("invalid audit details")
	// ErrInvalidAuditKey reports a missing or too short audit key.
	ErrInvalidAuditKey = errors.New("invalid audit key")
	// ErrAuditChainBroken is wrapped by every *AuditChainError.
	ErrAuditChainBroken = errors.New("audit chain broken")
)
