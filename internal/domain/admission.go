package domain

import (
	"fmt"
	"time"
)

// Decision is what a breaker says about one call, read locally by the SDK.
type Decision uint8

// Decisions.
const (
	// DecisionDeny rejects the call.
	DecisionDeny Decision = iota
	// DecisionAllow admits the call.
	DecisionAllow
	// DecisionAskPermit means the call may go only with a half-open permit
	// (baldur.permit.<svc>).
	DecisionAskPermit
)

// String names d.
func (d Decision) String() string {
	switch d {
	case DecisionDeny:
		return "deny"
	case DecisionAllow:
		return "allow"
	case DecisionAskPermit:
		return "ask_permit"
	}
	return fmt.Sprintf("Decision(%d)", uint8(d))
}

// Admit is the admission rule of a breaker, the one piece of code behind
// Breaker.Allows and every compact copy of a breaker's state (the fleet view's
// snapshots): disabled, metrics_only and forced_closed allow; forced_open
// denies; in auto mode closed allows, open denies before recoveryAt, and open
// from recoveryAt on and half_open need a permit. A state or mode this
// version does not know allows (fail open). It does not allocate.
func Admit(state State, mode Mode, recoveryAt, now time.Time) Decision {
	if d, ok := AdmitTimeless(state, mode); ok {
		return d
	}
	if now.Before(recoveryAt) {
		return DecisionDeny
	}
	return DecisionAskPermit
}

// AdmitTimeless is Admit for the callers that would rather not read the clock
// when they need not: it returns Admit's decision and true when the decision
// does not depend on the time, and false for an OPEN breaker in auto mode (or
// an unknown mode), whose decision depends on recovery_at.
func AdmitTimeless(state State, mode Mode) (Decision, bool) {
	switch mode {
	case ModeDisabled, ModeMetricsOnly, ModeForcedClosed:
		return DecisionAllow, true
	case ModeForcedOpen:
		return DecisionDeny, true
	}
	switch state {
	case StateOpen:
		return DecisionDeny, false
	case StateHalfOpen:
		return DecisionAskPermit, true
	}
	return DecisionAllow, true
}
