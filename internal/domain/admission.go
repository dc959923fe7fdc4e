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
	switch mode {
	case ModeDisabled, ModeMetricsOnly, ModeForcedClosed:
		return DecisionAllow
	case ModeForcedOpen:
		return DecisionDeny
	}
	switch state {
	case StateOpen:
		if now.Before(recoveryAt) {
			return DecisionDeny
		}
		return DecisionAskPermit
	case StateHalfOpen:
		return DecisionAskPermit
	}
	return DecisionAllow
}
