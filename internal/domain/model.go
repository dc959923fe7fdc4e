package domain

import "time"

// State is a breaker's position.
type State string

// Breaker states.
const (
	StateClosed   State = "closed"
	StateOpen     State = "open"
	StateHalfOpen State = "half_open"
)

// Mode says who decides a breaker's state.
type Mode string

// Breaker modes.
const (
	// ModeAuto: the rules of the fold decide.
	ModeAuto Mode = "auto"
	// ModeForcedOpen: an operator holds the breaker open until the TTL expires.
	ModeForcedOpen Mode = "forced_open"
	// ModeForcedClosed: an operator holds the breaker closed until the TTL expires.
	ModeForcedClosed Mode = "forced_closed"
	// ModeDisabled: the breaker always admits.
	ModeDisabled Mode = "disabled"
	// ModeMetricsOnly: outcomes are recorded but never trip the breaker.
	ModeMetricsOnly Mode = "metrics_only"
)

// Trigger names why a transition happened.
type Trigger string

// Transition triggers (DESIGN §3).
const (
	TriggerAuto            Trigger = "auto"
	TriggerManual          Trigger = "manual"
	TriggerHalfOpenFailure Trigger = "half_open_failure"
	TriggerRecoveryTimeout Trigger = "recovery_timeout"
	TriggerManualExpired   Trigger = "manual_expired"
	TriggerOverrideExpired Trigger = "override_expired"
	TriggerStuckHalfOpen   Trigger = "stuck_half_open"
	// TriggerCellUnmapped is the trigger of the watchdog's archive command:
	// the breaker's cell no longer owns its service on the ring. It names
	// no transition (archiving is not one), only the archived event's cause.
	TriggerCellUnmapped Trigger = "cell_unmapped"
	// TriggerIdle is the trigger of the watchdog's archive command for a
	// breaker with no activity for the idle period the command's ttl names
	// (CheckIdle). Like cell_unmapped it names no transition.
	TriggerIdle Trigger = "idle"
)

// Action is what a breaker command asks for.
type Action string

// Breaker command actions (DESIGN §3).
const (
	ActionOpen          Action = "open"
	ActionClose         Action = "close"
	ActionAuto          Action = "auto"
	ActionDisable       Action = "disable"
	ActionMetricsOnly   Action = "metrics_only"
	ActionHalfOpen      Action = "half_open"
	ActionOverride      Action = "override"
	ActionClearOverride Action = "clear_override"
	// ActionArchive deletes a cell-scoped breaker whose cell no longer owns
	// its service (trigger cell_unmapped), or any breaker idle for the
	// command's ttl (trigger idle). The watchdog sends it; it is not a
	// manual action and not a transition.
	ActionArchive Action = "archive"
)

// Actions lists every breaker command action, in the order of the contract.
var Actions = []Action{ActionOpen, ActionClose, ActionAuto, ActionDisable, ActionMetricsOnly,
	ActionHalfOpen, ActionOverride, ActionClearOverride, ActionArchive}

// Valid reports whether a is a known action.
func (a Action) Valid() bool {
	for _, k := range Actions {
		if a == k {
			return true
		}
	}
	return false
}

// Manual reports whether a is an operator's manual action, which needs an actor
// and a reason and is refused while the kill switch is on. half_open and
// archive are sent by the watchdog and are not manual.
func (a Action) Manual() bool {
	switch a {
	case ActionOpen, ActionClose, ActionAuto, ActionDisable, ActionMetricsOnly,
		ActionOverride, ActionClearOverride:
		return true
	}
	return false
}

// ThresholdOverride replaces threshold fields of a breaker's config until it
// expires (the seed's mesh-coordinator override). A nil field keeps the base
// value.
type ThresholdOverride struct {
	FailureThreshold      *int      `json:"failure_threshold,omitempty"`
	FailureRateThreshold  *float64  `json:"failure_rate_threshold,omitempty"`
	MinimumCalls          *int      `json:"minimum_calls,omitempty"`
	SlowCallRateThreshold *float64  `json:"slow_call_rate_threshold,omitempty"`
	RecoveryTimeout       *Duration `json:"recovery_timeout,omitempty"`
}

// Command is an operator's (or the watchdog's) breaker command, decoded from the
// wire and validated by internal/events.
type Command struct {
	// ID is the command's ce-id; the fold records it as last_command_id.
	ID                 string             `json:"id"`
	Action             Action             `json:"action"`
	Actor              string             `json:"actor,omitempty"`
	Reason             string             `json:"reason,omitempty"`
	TTL                Duration           `json:"ttl,omitempty"`
	TriggerReplay      bool               `json:"trigger_replay,omitempty"`
	OverrideKillSwitch bool               `json:"override_kill_switch,omitempty"`
	Override           *ThresholdOverride `json:"override,omitempty"`
	// Trigger is set by the watchdog on half_open commands (recovery_timeout,
	// stuck_half_open), on expiry commands and on archive commands
	// (cell_unmapped, idle); empty means manual.
	Trigger Trigger `json:"trigger,omitempty"`
	// ValidUntil, when set, is the moment after which the command must not
	// be applied: the operator who sent it was told by then whether it was.
	ValidUntil time.Time `json:"valid_until,omitzero"`
}

// Expired reports whether c, folded at now, is past its ValidUntil.
func (c Command) Expired(now time.Time) bool {
	return !c.ValidUntil.IsZero() && now.After(c.ValidUntil)
}

// Report is one outcome report as the fold sees it: the wire payload plus the
// reporting node (ce-source) and the stream sequence it was read at.
type Report struct {
	Node             string
	Seq              uint64
	At               time.Time
	Successes        int64
	Failures         int64
	SlowCalls        int64
	TrailingFailures int64
}

// Calls is the number of calls the report covers.
func (r Report) Calls() int64 { return r.Successes + r.Failures }
