package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Keys of the KV bucket baldur_governance. Each key holds the JSON of the
// Governance field with the same JSON name, so a reader assembles a Governance
// by decoding each key's value into its field.
const (
	// GovernanceKeyKillSwitch holds a KillSwitchState (written by
	// breaker-workers applying governance commands).
	GovernanceKeyKillSwitch = "kill_switch"
	// GovernanceKeyEmergencyLevel holds an EmergencyState (written by
	// breaker-workers applying governance commands).
	GovernanceKeyEmergencyLevel = "emergency_level"
	// GovernanceKeyErrorBudget holds an ErrorBudget: its SLO target and
	// window are written by breaker-workers applying set_slo_target, its
	// remaining budget by the watchdog.
	GovernanceKeyErrorBudget = "error_budget"
	// GovernanceKeyAggregate holds a FleetAggregate (written by the
	// watchdog). It is published information, not a governance input.
	GovernanceKeyAggregate = "aggregate"
)

// WithKey returns g with the value of one key of the bucket baldur_governance
// applied: kill_switch, emergency_level or error_budget, decoded strictly
// (unknown fields refused) and validated. A nil value (a deleted key) is the
// field's zero value: kill switch off, level normal, no error-budget gate.
// known is false for any other key (the watchdog's aggregate), which is not a
// governance input; g is then returned unchanged.
func (g Governance) WithKey(key string, value []byte) (next Governance, known bool, err error) {
	next = g
	var dst any
	switch key {
	case GovernanceKeyKillSwitch:
		next.KillSwitch = KillSwitchState{}
		dst = &next.KillSwitch
	case GovernanceKeyEmergencyLevel:
		next.Emergency = EmergencyState{}
		dst = &next.Emergency
	case GovernanceKeyErrorBudget:
		next.ErrorBudget = ErrorBudget{}
		dst = &next.ErrorBudget
	default:
		return g, false, nil
	}
	if value == nil {
		return next, true, nil
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return g, true, fmt.Errorf("%s: %w", key, err)
	}
	if err := next.Validate(); err != nil {
		return g, true, fmt.Errorf("%s: %w", key, err)
	}
	return next, true, nil
}

// EmergencyLevel is the fleet's emergency level (seed: NORMAL, LEVEL_1,
// LEVEL_2, LEVEL_3). It is stored and sent on the wire as its number, 0..3.
type EmergencyLevel int

// Emergency levels.
const (
	// EmergencyNormal: nothing is restricted.
	EmergencyNormal EmergencyLevel = 0
	// EmergencyLevel1: tier-3 services are blocked.
	EmergencyLevel1 EmergencyLevel = 1
	// EmergencyLevel2: tier-2 and tier-3 services are blocked, and so is
	// automated replay.
	EmergencyLevel2 EmergencyLevel = 2
	// EmergencyLevel3: as LEVEL_2, and tier-1 services run at 50 %.
	EmergencyLevel3 EmergencyLevel = 3
)

// EmergencyLevels lists the levels in increasing severity.
var EmergencyLevels = []EmergencyLevel{EmergencyNormal, EmergencyLevel1, EmergencyLevel2, EmergencyLevel3}

var emergencyLevelNames = [...]string{"NORMAL", "LEVEL_1", "LEVEL_2", "LEVEL_3"}

// Valid reports whether l is within 0..3.
func (l EmergencyLevel) Valid() bool { return l >= EmergencyNormal && l <= EmergencyLevel3 }

// String returns the seed's name of l (NORMAL, LEVEL_1, LEVEL_2, LEVEL_3), or
// LEVEL_<n> for an invalid level.
func (l EmergencyLevel) String() string {
	if l.Valid() {
		return emergencyLevelNames[l]
	}
	return "LEVEL_" + strconv.Itoa(int(l))
}

// ParseEmergencyLevel reads a level by name (NORMAL, LEVEL_1, LEVEL_2,
// LEVEL_3) or by number (0..3). Anything else is an error wrapping
// ErrInvalidEmergencyLevel.
func ParseEmergencyLevel(s string) (EmergencyLevel, error) {
	for i, name := range emergencyLevelNames {
		if s == name {
			return EmergencyLevel(i), nil
		}
	}
	if n, err := strconv.Atoi(s); err == nil && EmergencyLevel(n).Valid() {
		return EmergencyLevel(n), nil
	}
	return 0, fmt.Errorf("%w %q: want NORMAL, LEVEL_1, LEVEL_2, LEVEL_3 or 0..3", ErrInvalidEmergencyLevel, s)
}

// Validate returns an error wrapping ErrInvalidEmergencyLevel when l is not
// within 0..3.
func (l EmergencyLevel) Validate() error {
	if !l.Valid() {
		return fmt.Errorf("%w %d: must be 0..3", ErrInvalidEmergencyLevel, int(l))
	}
	return nil
}

// BlocksAutomation reports whether l stops automated replay (seed: LEVEL_2 and
// above). An invalid level above 3 blocks too.
func (l EmergencyLevel) BlocksAutomation() bool { return l >= EmergencyLevel2 }

// TierAdmission is the fraction of work a service of the given tier may run at
// level l: 1 admits all, 0 blocks. Tier 1 is the most critical. LEVEL_1 blocks
// tier 3; LEVEL_2 blocks tiers 2 and 3; LEVEL_3 blocks tiers 2 and 3 and runs
// tier 1 at 0.5. A tier outside 1..3 (an unconfigured service) is treated as
// tier 3, the least protected.
func (l EmergencyLevel) TierAdmission(tier int) float64 {
	if tier < 1 || tier > 3 {
		tier = 3
	}
	switch {
	case l <= EmergencyNormal:
		return 1
	case l == EmergencyLevel1:
		if tier == 3 {
			return 0
		}
		return 1
	case l == EmergencyLevel2:
		if tier == 1 {
			return 1
		}
		return 0
	default: // LEVEL_3 and above
		if tier == 1 {
			return 0.5
		}
		return 0
	}
}

// KillSwitchState is the value of the governance key kill_switch. While Active,
// automated replay stops and manual breaker control is refused unless the
// command overrides the kill switch.
type KillSwitchState struct {
	Active    bool      `json:"active"`
	Actor     string    `json:"actor,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// EmergencyState is the value of the governance key emergency_level.
type EmergencyState struct {
	Level     EmergencyLevel `json:"level"`
	Actor     string         `json:"actor,omitempty"`
	Reason    string         `json:"reason,omitempty"`
	UpdatedAt time.Time      `json:"updated_at,omitzero"`
}

// Error-budget thresholds (seed): automation is blocked below 10 % remaining
// and a warning is raised below 20 %.
const (
	ErrorBudgetBlockBelow = 0.10
	ErrorBudgetWarnBelow  = 0.20
)

// ErrorBudgetLevel classifies the remaining error budget.
type ErrorBudgetLevel string

// Error-budget levels.
const (
	// ErrorBudgetOK: at least 20 % remains.
	ErrorBudgetOK ErrorBudgetLevel = "ok"
	// ErrorBudgetWarning: below 20 %, at least 10 %.
	ErrorBudgetWarning ErrorBudgetLevel = "warning"
	// ErrorBudgetCritical: below 10 %; automation is blocked.
	ErrorBudgetCritical ErrorBudgetLevel = "critical"
)

// ErrorBudgetLevelOf classifies a remaining fraction: critical below 0.10,
// warning below 0.20, ok otherwise. NaN is critical: a broken budget fails
// closed.
func ErrorBudgetLevelOf(remaining float64) ErrorBudgetLevel {
	switch {
	case !(remaining >= ErrorBudgetBlockBelow):
		return ErrorBudgetCritical
	case remaining < ErrorBudgetWarnBelow:
		return ErrorBudgetWarning
	}
	return ErrorBudgetOK
}

// ErrorBudget is the value of the governance key error_budget, written by the
// watchdog from outcome rollups. The gate is off (Enabled false) until an SLO
// target is set for the fleet.
type ErrorBudget struct {
	Enabled bool `json:"enabled"`
	// SLOTarget is the success objective, e.g. 0.999.
	SLOTarget float64 `json:"slo_target,omitempty"`
	// SLOWindow is the window the objective is measured over; zero means
	// DefaultSLOWindow.
	SLOWindow Duration `json:"slo_window,omitempty"`
	// Remaining is the fraction of the budget left, 0..1.
	Remaining float64          `json:"remaining"`
	Level     ErrorBudgetLevel `json:"level,omitempty"`
	// TotalCalls and FailedCalls are the counts over the SLO window that
	// Remaining was computed from.
	TotalCalls  int64     `json:"total_calls"`
	FailedCalls int64     `json:"failed_calls"`
	UpdatedAt   time.Time `json:"updated_at,omitzero"`
}

// SLO window bounds and default (seed: 30 days).
const (
	DefaultSLOWindow = 30 * 24 * time.Hour
	MinSLOWindow     = time.Hour
	MaxSLOWindow     = 90 * 24 * time.Hour
)

// Window returns the SLO window of b: SLOWindow, or DefaultSLOWindow when it
// is zero.
func (b ErrorBudget) Window() time.Duration {
	if b.SLOWindow == 0 {
		return DefaultSLOWindow
	}
	return b.SLOWindow.D()
}

// ValidateSLOWindow returns an error wrapping ErrInvalidSLOWindow unless w is
// within [MinSLOWindow, MaxSLOWindow].
func ValidateSLOWindow(w time.Duration) error {
	if w < MinSLOWindow || w > MaxSLOWindow {
		return fmt.Errorf("%w %s: must be within %s..%s (e.g. 720h for 30 days)", ErrInvalidSLOWindow, w, MinSLOWindow, MaxSLOWindow)
	}
	return nil
}

// FleetAggregate is the value of the governance key aggregate: the
// fleet-wide failure rate (Σ window failures / Σ window calls over every
// breaker) as the watchdog last computed it.
type FleetAggregate struct {
	// FailureRate is the failure fraction, 0..1; 0 when there is no call.
	FailureRate float64 `json:"failure_rate"`
	// Breakers is the number of breakers it was computed over.
	Breakers  int       `json:"breakers"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// ValidateSLOTarget returns an error wrapping ErrInvalidSLOTarget unless
// 0 < target < 1. A target of 1 leaves no budget at all and is refused.
func ValidateSLOTarget(target float64) error {
	if !(target > 0 && target < 1) {
		return fmt.Errorf("%w %v: must be greater than 0 and less than 1 (e.g. 0.999)", ErrInvalidSLOTarget, target)
	}
	return nil
}

// ErrorBudgetRemaining returns the fraction of the error budget left over an
// SLO window with total calls of which failed failed: 1 − failed/allowed,
// where allowed = (1 − target) × total, clamped to [0, 1]. With no calls the
// whole budget remains (1). The result is rounded to 9 decimal places so that
// a budget that is exactly 10 % on paper is 0.1 and not 0.0999999….
func ErrorBudgetRemaining(target float64, total, failed int64) (float64, error) {
	if err := ValidateSLOTarget(target); err != nil {
		return 0, err
	}
	if total < 0 || failed < 0 || failed > total {
		return 0, fmt.Errorf("%w: %d failed of %d calls", ErrInvalidCallCounts, failed, total)
	}
	if total == 0 {
		return 1, nil
	}
	allowed := (1 - target) * float64(total)
	r := 1 - float64(failed)/allowed
	r = math.Round(r*1e9) / 1e9
	return math.Max(0, math.Min(1, r)), nil
}

// ComputeErrorBudget returns the enabled error-budget state for an SLO target
// and the calls over its window, as the watchdog stores it. The caller sets
// SLOWindow.
func ComputeErrorBudget(target float64, total, failed int64, at time.Time) (ErrorBudget, error) {
	r, err := ErrorBudgetRemaining(target, total, failed)
	if err != nil {
		return ErrorBudget{}, err
	}
	return ErrorBudget{
		Enabled:     true,
		SLOTarget:   target,
		Remaining:   r,
		Level:       ErrorBudgetLevelOf(r),
		TotalCalls:  total,
		FailedCalls: failed,
		UpdatedAt:   at,
	}, nil
}

// Governance is the fleet's governance state: the three keys of the KV bucket
// baldur_governance.
type Governance struct {
	KillSwitch  KillSwitchState `json:"kill_switch"`
	Emergency   EmergencyState  `json:"emergency_level"`
	ErrorBudget ErrorBudget     `json:"error_budget"`
}

// Validate returns an error naming every invalid field: the emergency level,
// and, when the error-budget gate is enabled, the SLO target and the remaining
// fraction.
func (g Governance) Validate() error {
	var errs []error
	if err := g.Emergency.Level.Validate(); err != nil {
		errs = append(errs, err)
	}
	if g.ErrorBudget.Enabled {
		if err := ValidateSLOTarget(g.ErrorBudget.SLOTarget); err != nil {
			errs = append(errs, err)
		}
		if w := g.ErrorBudget.SLOWindow; w != 0 {
			if err := ValidateSLOWindow(w.D()); err != nil {
				errs = append(errs, err)
			}
		}
		if !(g.ErrorBudget.Remaining >= 0 && g.ErrorBudget.Remaining <= 1) {
			errs = append(errs, fmt.Errorf("error budget remaining %v must be within [0, 1]", g.ErrorBudget.Remaining))
		}
	}
	return errors.Join(errs...)
}

// GovernanceBlocker names the rule that refused an action. Its values are the
// suffixes of the governance event subjects.
type GovernanceBlocker string

// Governance blockers, in the order they are checked.
const (
	BlockerNone           GovernanceBlocker = ""
	BlockerKillSwitch     GovernanceBlocker = "kill_switch"
	BlockerEmergencyLevel GovernanceBlocker = "emergency_level"
	BlockerErrorBudget    GovernanceBlocker = "error_budget"
)

// GovernanceDecision is governance's answer to "may this run now?".
type GovernanceDecision struct {
	Allowed bool `json:"allowed"`
	// Reason says why a refused action was refused; empty when allowed.
	Reason  string            `json:"reason,omitempty"`
	Blocker GovernanceBlocker `json:"blocker,omitempty"`
	// Warning is set on an allowed decision that should be surfaced (error
	// budget below 20 %, or a kill switch that was overridden).
	Warning string `json:"warning,omitempty"`
	// Overridden reports that the kill switch was on and the command's
	// override_kill_switch let it through; the caller must audit it.
	Overridden bool `json:"overridden,omitempty"`
}

// Err returns nil for an allowed decision, else an error wrapping
// ErrGovernanceBlocked and the blocker's sentinel (ErrKillSwitchOn,
// ErrEmergencyLevelBlocks, ErrErrorBudgetExhausted), with the reason.
func (d GovernanceDecision) Err() error {
	if d.Allowed {
		return nil
	}
	var cause error
	switch d.Blocker {
	case BlockerKillSwitch:
		cause = ErrKillSwitchOn
	case BlockerEmergencyLevel:
		cause = ErrEmergencyLevelBlocks
	case BlockerErrorBudget:
		cause = ErrErrorBudgetExhausted
	default:
		return fmt.Errorf("%w: %s", ErrGovernanceBlocked, d.Reason)
	}
	return fmt.Errorf("%w: %w", ErrGovernanceBlocked, blockedError{cause: cause, reason: d.Reason})
}

// CheckReplay decides whether automated replay may run, in the seed's order:
// the kill switch blocks; an emergency level of LEVEL_2 or above blocks; with
// the gate enabled, an error budget below 10 % blocks and below 20 % warns. A
// refusal must be audited and emitted by the caller, never dropped silently.
func (g Governance) CheckReplay() GovernanceDecision {
	if g.KillSwitch.Active {
		return GovernanceDecision{
			Blocker: BlockerKillSwitch,
			Reason:  "kill switch is on" + byWhom(g.KillSwitch.Actor, g.KillSwitch.Reason),
		}
	}
	if g.Emergency.Level.BlocksAutomation() {
		return GovernanceDecision{
			Blocker: BlockerEmergencyLevel,
			Reason: fmt.Sprintf("emergency level %s blocks automated replay (LEVEL_2 and above)%s",
				g.Emergency.Level, byWhom(g.Emergency.Actor, g.Emergency.Reason)),
		}
	}
	d := GovernanceDecision{Allowed: true}
	if b := g.ErrorBudget; b.Enabled {
		switch ErrorBudgetLevelOf(b.Remaining) {
		case ErrorBudgetCritical:
			return GovernanceDecision{
				Blocker: BlockerErrorBudget,
				Reason: fmt.Sprintf("error budget %s remaining is below the %s gate (SLO target %v)",
					percent(b.Remaining), percent(ErrorBudgetBlockBelow), b.SLOTarget),
			}
		case ErrorBudgetWarning:
			d.Warning = fmt.Sprintf("error budget %s remaining is below %s (SLO target %v)",
				percent(b.Remaining), percent(ErrorBudgetWarnBelow), b.SLOTarget)
		}
	}
	return d
}

// CheckManualControl decides whether an operator's manual breaker action may
// run: refused while the kill switch is on, unless override is set, in which
// case the decision is allowed with Overridden set and the caller must audit
// the override. The emergency level and the error budget never block manual
// control.
func (g Governance) CheckManualControl(override bool) GovernanceDecision {
	if !g.KillSwitch.Active {
		return GovernanceDecision{Allowed: true}
	}
	who := byWhom(g.KillSwitch.Actor, g.KillSwitch.Reason)
	if override {
		return GovernanceDecision{
			Allowed:    true,
			Overridden: true,
			Warning:    "kill switch is on" + who + "; overridden by override_kill_switch",
		}
	}
	return GovernanceDecision{
		Blocker: BlockerKillSwitch,
		Reason:  "kill switch is on" + who + "; manual control needs override_kill_switch",
	}
}

func byWhom(actor, reason string) string {
	switch {
	case actor != "" && reason != "":
		return fmt.Sprintf(" (by %s: %s)", actor, reason)
	case actor != "":
		return fmt.Sprintf(" (by %s)", actor)
	case reason != "":
		return fmt.Sprintf(" (%s)", reason)
	}
	return ""
}

func percent(f float64) string {
	return strconv.FormatFloat(f*100, 'f', 1, 64) + " %"
}

// blockedError is a governance block: its message is the decision's reason
// alone (which already says what blocks, "kill switch is on (by …)"), and it
// wraps the blocker's sentinel (ErrKillSwitchOn, ...).
type blockedError struct {
	cause  error
	reason string
}

func (e blockedError) Error() string { return e.reason }
func (e blockedError) Unwrap() error { return e.cause }
