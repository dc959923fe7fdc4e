package domain

import "errors"

// Sentinel errors of the dead-letter, retry, governance, batch-sizing, priority
// and audit rules. Functions wrap them with %w and a message that names the
// offending value, so callers test with errors.Is and show err.Error().
var (
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
	// ErrInvalidCallCounts reports negative call counts, or more failed calls
	// than calls, given to the error-budget computation.
	ErrInvalidCallCounts = errors.New("invalid call counts")
	// ErrGovernanceBlocked is wrapped by every refusal that governance decides
	// (kill switch, emergency level, error budget).
	ErrGovernanceBlocked = errors.New("blocked by governance")
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
	// ErrAuditChainBroken is wrapped by every *AuditChainError.
	ErrAuditChainBroken = errors.New("audit chain broken")
)
