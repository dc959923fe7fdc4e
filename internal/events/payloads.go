package events

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/baldurfleet/baldur/internal/domain"
)

// Body limits, in bytes, checked before any decoding.
const (
	// MaxOutcomeBody bounds an outcome report.
	MaxOutcomeBody = 8 << 10
	// MaxCommandBody bounds a breaker command.
	MaxCommandBody = 16 << 10
	// MaxGovernanceBody bounds a governance command.
	MaxGovernanceBody = 16 << 10
	// MaxRequestSize bounds a dead letter's request, and so a replay
	// delivery's body.
	MaxRequestSize = 256 << 10
	// MaxDeadLetterBody bounds a dead letter: the request plus 64 KiB for the
	// other fields.
	MaxDeadLetterBody = MaxRequestSize + 64<<10
	// MaxReplayReplyBody bounds a service's answer to a replay delivery.
	MaxReplayReplyBody = 32 << 10
	// MaxPermitBody bounds a permit request and a permit reply.
	MaxPermitBody = 1 << 10
	// MaxEventBody bounds the events of stream BALDUR_EVENTS.
	MaxEventBody = 64 << 10
)

// Field limits.
const (
	// MaxCount bounds every count of an outcome report.
	MaxCount = 1_000_000_000
	// MaxFailureTypes bounds the number of failure_types keys in one report.
	MaxFailureTypes = 32
	// MaxTokenLen bounds a failure type (a failure_types key, a dead letter's
	// failure_type).
	MaxTokenLen = 64
	// MaxActorLen bounds actor.
	MaxActorLen = 128
	// MaxReasonLen bounds reason.
	MaxReasonLen = 1024
	// MaxNodeLen bounds a node id (permit request node, ce-source).
	MaxNodeLen = MaxSourceLen
	// MaxOperationLen bounds a dead letter's operation.
	MaxOperationLen = 128
	// MaxKeyLen bounds idempotency_key and entity_id.
	MaxKeyLen = 256
	// MaxEntityTypeLen bounds entity_type.
	MaxEntityTypeLen = 128
	// MaxErrorCodeLen bounds error_code.
	MaxErrorCodeLen = 64
	// MaxErrorMessageLen bounds error_message and a replay reply's error.
	MaxErrorMessageLen = 16 << 10
	// MaxMetadataSize bounds a dead letter's metadata object.
	MaxMetadataSize = 16 << 10
	// MaxMaxRetries bounds a dead letter's max_retries.
	MaxMaxRetries = 100
	// MaxRateThreshold is the largest failure or slow-call rate threshold, in
	// percent.
	MaxRateThreshold = 100.0
)

// TTL bounds of manual breaker commands.
const (
	// MinTTL is the shortest ttl of a manual command.
	MinTTL = domain.MinTimeoutSetting
	// MaxTTL is the longest ttl of a manual command.
	MaxTTL = domain.MaxManualOverrideTTL
)

// OutcomeReport is the body of baldur.outcome.<svc>: the outcomes of the calls
// one node made since its last report.
type OutcomeReport struct {
	Successes int64 `json:"successes"`
	Failures  int64 `json:"failures"`
	SlowCalls int64 `json:"slow_calls"`
	// TrailingFailures is the number of failures after the last success of
	// the batch; it equals Failures when Successes is 0.
	TrailingFailures int64 `json:"trailing_failures"`
	// FailureTypes counts failures by type; optional. Its counts add up to at
	// most Failures.
	FailureTypes map[string]int64 `json:"failure_types,omitempty"`
}

const payloadOutcome = "outcome report"

// Validate checks the report: counts in [0, MaxCount], at least one call,
// trailing_failures ≤ failures (= failures without successes), slow_calls ≤
// calls, at most MaxFailureTypes failure types with well-formed names and
// counts ≥ 1 that add up to at most failures.
func (r OutcomeReport) Validate() error {
	for _, c := range []struct {
		name string
		v    int64
	}{{"successes", r.Successes}, {"failures", r.Failures}, {"slow_calls", r.SlowCalls}, {"trailing_failures", r.TrailingFailures}} {
		if c.v < 0 {
			return fieldErr(ErrInvalidValue, payloadOutcome, c.name, "is %d; counts must not be negative", c.v)
		}
		if c.v > MaxCount {
			return fieldErr(ErrInvalidValue, payloadOutcome, c.name, "is %d; counts are at most %d per report", c.v, MaxCount)
		}
	}
	calls := r.Successes + r.Failures
	if calls == 0 {
		return fieldErr(ErrInvalidValue, payloadOutcome, "successes", "is 0 and so is failures; a report covers at least one call")
	}
	if r.TrailingFailures > r.Failures {
		return fieldErr(ErrInvalidValue, payloadOutcome, "trailing_failures", "is %d, more than failures (%d)", r.TrailingFailures, r.Failures)
	}
	if r.Successes == 0 && r.TrailingFailures != r.Failures {
		return fieldErr(ErrInvalidValue, payloadOutcome, "trailing_failures", "is %d but must equal failures (%d) when successes is 0", r.TrailingFailures, r.Failures)
	}
	if r.SlowCalls > calls {
		return fieldErr(ErrInvalidValue, payloadOutcome, "slow_calls", "is %d, more than successes + failures (%d)", r.SlowCalls, calls)
	}
	if len(r.FailureTypes) > MaxFailureTypes {
		return fieldErr(ErrTooLarge, payloadOutcome, "failure_types", "has %d keys, at most %d are allowed", len(r.FailureTypes), MaxFailureTypes)
	}
	var sum int64
	for k, v := range r.FailureTypes {
		if err := checkToken(payloadOutcome, "failure_types", k); err != nil {
			return err
		}
		if v < 1 || v > MaxCount {
			return fieldErr(ErrInvalidValue, payloadOutcome, "failure_types."+k, "is %d; want 1..%d", v, MaxCount)
		}
		sum += v
	}
	if sum > r.Failures {
		return fieldErr(ErrInvalidValue, payloadOutcome, "failure_types", "add up to %d, more than failures (%d)", sum, r.Failures)
	}
	return nil
}

// Report returns the report as the fold sees it, from the reporting node
// (ce-source), the stream sequence and the time it was read at.
func (r OutcomeReport) Report(node string, seq uint64, at time.Time) domain.Report {
	return domain.Report{Node: node, Seq: seq, At: at, Successes: r.Successes, Failures: r.Failures,
		SlowCalls: r.SlowCalls, TrailingFailures: r.TrailingFailures}
}

// BreakerCommand is the body of baldur.control.<svc>: an operator's (or the
// watchdog's) breaker command. Its model is domain.Command; Command converts,
// and Validate is the one place the rules live (ValidateCommand applies them
// to a domain.Command).
type BreakerCommand struct {
	Action domain.Action `json:"action"`
	// Actor and Reason are required for manual actions.
	Actor  string `json:"actor,omitempty"`
	Reason string `json:"reason,omitempty"`
	// TTL bounds a manual open, close or override; 0 uses the configured
	// manual_override_ttl. On archive with trigger idle it is the idle
	// period, required.
	TTL domain.Duration `json:"ttl,omitempty"`
	// TriggerReplay asks a close to replay the service's dead letters.
	TriggerReplay bool `json:"trigger_replay,omitempty"`
	// OverrideKillSwitch lets a manual action through while the kill switch
	// is on; it is audited.
	OverrideKillSwitch bool `json:"override_kill_switch,omitempty"`
	// Override holds the threshold fields of an override action.
	Override *domain.ThresholdOverride `json:"override,omitempty"`
	// Trigger is set by the watchdog on the commands it sends.
	Trigger domain.Trigger `json:"trigger,omitempty"`
	// ValidUntil, when set, is the moment after which a breaker-worker
	// refuses the command (rejected event, code command_expired) instead of
	// applying it: the operator's tools stamp the end of their wait.
	ValidUntil time.Time `json:"valid_until,omitzero"`
}

const payloadCommand = "breaker command"

// commandTriggers lists the triggers each action may carry besides none. The
// watchdog sends every deadline as a half_open command whose trigger names
// the deadline; the other actions are an operator's.
var commandTriggers = map[domain.Action][]domain.Trigger{
	domain.ActionHalfOpen: {domain.TriggerRecoveryTimeout, domain.TriggerStuckHalfOpen,
		domain.TriggerManualExpired, domain.TriggerOverrideExpired},
	domain.ActionArchive: {domain.TriggerCellUnmapped, domain.TriggerIdle},
}

// watchdogAction reports whether a is sent by the watchdog: its trigger list
// is the whole list, with no manual trigger.
func watchdogAction(a domain.Action) bool {
	return a == domain.ActionHalfOpen || a == domain.ActionArchive
}

// Validate checks the command: a known action; actor and reason for manual
// actions; ttl only on open, close and override and within [MinTTL, MaxTTL];
// trigger_replay only on close; override_kill_switch only on manual actions;
// override present exactly for the override action, with at least one field
// and every field in range; trigger allowed for the action (half_open:
// recovery_timeout, stuck_half_open, manual_expired, override_expired or
// none; archive: cell_unmapped or idle, required, with an actor and a
// reason, and with idle a ttl within [domain.MinIdlePeriod,
// domain.MaxIdlePeriod]; every other action: manual or none).
func (c BreakerCommand) Validate() error {
	if c.Action == "" {
		return fieldErr(ErrMissingField, payloadCommand, "action", "is required (one of %s)", list(domain.Actions))
	}
	if !c.Action.Valid() {
		return fieldErr(ErrInvalidValue, payloadCommand, "action", "is %q; want one of %s", clip(string(c.Action), 64), list(domain.Actions))
	}
	manual := c.Action.Manual()
	archive := c.Action == domain.ActionArchive
	if err := checkText(payloadCommand, "actor", c.Actor, MaxActorLen, manual || archive, false); err != nil {
		return err
	}
	if err := checkText(payloadCommand, "reason", c.Reason, MaxReasonLen, manual || archive, false); err != nil {
		return err
	}
	if archive && c.Trigger == "" {
		return fieldErr(ErrMissingField, payloadCommand, "trigger", "is required for action \"archive\" (%s or %s)", domain.TriggerCellUnmapped, domain.TriggerIdle)
	}
	idle := archive && c.Trigger == domain.TriggerIdle
	if idle && c.TTL == 0 {
		return fieldErr(ErrMissingField, payloadCommand, "ttl", "is required for archive with trigger idle (the idle period)")
	}
	if c.TTL != 0 {
		switch {
		case idle:
			if c.TTL.D() < domain.MinIdlePeriod || c.TTL.D() > domain.MaxIdlePeriod {
				return fieldErr(ErrInvalidValue, payloadCommand, "ttl", "is %s; want an idle period of %s..%s", c.TTL, domain.MinIdlePeriod, domain.MaxIdlePeriod)
			}
		case c.Action == domain.ActionOpen, c.Action == domain.ActionClose, c.Action == domain.ActionOverride:
			if c.TTL.D() < MinTTL || c.TTL.D() > MaxTTL {
				return fieldErr(ErrInvalidValue, payloadCommand, "ttl", "is %s; want %s..%s", c.TTL, MinTTL, MaxTTL)
			}
		default:
			return fieldErr(ErrInvalidValue, payloadCommand, "ttl", "is given for action %q; only open, close, override and archive with trigger idle take a ttl", c.Action)
		}
	}
	if c.TriggerReplay && c.Action != domain.ActionClose {
		return fieldErr(ErrInvalidValue, payloadCommand, "trigger_replay", "is given for action %q; only close replays", c.Action)
	}
	if c.OverrideKillSwitch && !manual {
		return fieldErr(ErrInvalidValue, payloadCommand, "override_kill_switch", "is given for action %q, which is not a manual action", c.Action)
	}
	if c.Action == domain.ActionOverride {
		if c.Override == nil {
			return fieldErr(ErrMissingField, payloadCommand, "override", "is required for action \"override\"")
		}
		if err := validateOverride(*c.Override); err != nil {
			return err
		}
	} else if c.Override != nil {
		return fieldErr(ErrInvalidValue, payloadCommand, "override", "is given for action %q; only the override action takes one", c.Action)
	}
	if c.Trigger != "" {
		allowed := commandTriggers[c.Action]
		if !watchdogAction(c.Action) {
			allowed = append([]domain.Trigger{domain.TriggerManual}, allowed...)
		}
		if !oneOf(c.Trigger, allowed) {
			return fieldErr(ErrInvalidValue, payloadCommand, "trigger", "is %q; action %q takes %s or none", clip(string(c.Trigger), 64), c.Action, list(allowed))
		}
	}
	return nil
}

func validateOverride(o domain.ThresholdOverride) error {
	if o.FailureThreshold == nil && o.FailureRateThreshold == nil && o.MinimumCalls == nil &&
		o.SlowCallRateThreshold == nil && o.RecoveryTimeout == nil {
		return fieldErr(ErrMissingField, payloadCommand, "override", "sets no field; give at least one of failure_threshold, failure_rate_threshold, minimum_calls, slow_call_rate_threshold, recovery_timeout")
	}
	if v := o.FailureThreshold; v != nil && (*v < 1 || *v > domain.MaxCountSetting) {
		return fieldErr(ErrInvalidValue, payloadCommand, "override.failure_threshold", "is %d; want 1..%d", *v, domain.MaxCountSetting)
	}
	if v := o.MinimumCalls; v != nil && (*v < 1 || *v > domain.MaxCountSetting) {
		return fieldErr(ErrInvalidValue, payloadCommand, "override.minimum_calls", "is %d; want 1..%d", *v, domain.MaxCountSetting)
	}
	if v := o.FailureRateThreshold; v != nil && !(*v > 0 && *v <= MaxRateThreshold) {
		return fieldErr(ErrInvalidValue, payloadCommand, "override.failure_rate_threshold", "is %v; want a percentage in (0, 100]", *v)
	}
	if v := o.SlowCallRateThreshold; v != nil && !(*v > 0 && *v <= MaxRateThreshold) {
		return fieldErr(ErrInvalidValue, payloadCommand, "override.slow_call_rate_threshold", "is %v; want a percentage in (0, 100]", *v)
	}
	if v := o.RecoveryTimeout; v != nil && (v.D() < domain.MinTimeoutSetting || v.D() > domain.MaxTimeoutSetting) {
		return fieldErr(ErrInvalidValue, payloadCommand, "override.recovery_timeout", "is %s; want %s..%s", v, domain.MinTimeoutSetting, domain.MaxTimeoutSetting)
	}
	return nil
}

// Command returns the command as the fold sees it; id is the message's ce-id.
func (c BreakerCommand) Command(id string) domain.Command {
	return domain.Command{ID: id, Action: c.Action, Actor: c.Actor, Reason: c.Reason, TTL: c.TTL,
		TriggerReplay: c.TriggerReplay, OverrideKillSwitch: c.OverrideKillSwitch,
		Override: c.Override, Trigger: c.Trigger, ValidUntil: c.ValidUntil}
}

// CommandFromDomain returns the wire form of c (its ID travels as ce-id).
func CommandFromDomain(c domain.Command) BreakerCommand {
	return BreakerCommand{Action: c.Action, Actor: c.Actor, Reason: c.Reason, TTL: c.TTL,
		TriggerReplay: c.TriggerReplay, OverrideKillSwitch: c.OverrideKillSwitch,
		Override: c.Override, Trigger: c.Trigger}
}

// ValidateCommand applies BreakerCommand.Validate to a domain.Command.
func ValidateCommand(c domain.Command) error { return CommandFromDomain(c).Validate() }

// GovernanceAction is what a governance command asks for.
type GovernanceAction string

// Governance actions.
const (
	ActionKillSwitchOn      GovernanceAction = "kill_switch_on"
	ActionKillSwitchOff     GovernanceAction = "kill_switch_off"
	ActionSetEmergencyLevel GovernanceAction = "set_emergency_level"
	// ActionSetSLOTarget sets the fleet's SLO target and window, which turn
	// the error-budget gate on; a target of 0 turns it off.
	ActionSetSLOTarget GovernanceAction = "set_slo_target"
)

// GovernanceActions lists every governance action.
var GovernanceActions = []GovernanceAction{ActionKillSwitchOn, ActionKillSwitchOff, ActionSetEmergencyLevel, ActionSetSLOTarget}

// Valid reports whether a is a known governance action.
func (a GovernanceAction) Valid() bool { return oneOf(a, GovernanceActions) }

// GovernanceCommand is the body of baldur.governance.
type GovernanceCommand struct {
	Action GovernanceAction `json:"action"`
	// Level is required for set_emergency_level (0..3) and refused otherwise.
	Level *domain.EmergencyLevel `json:"level,omitempty"`
	// SLOTarget is required for set_slo_target and refused otherwise: the
	// success objective in (0, 1), e.g. 0.999, or 0 to turn the error-budget
	// gate off.
	SLOTarget *float64 `json:"slo_target,omitempty"`
	// SLOWindow is the window of the objective for set_slo_target (e.g.
	// "720h"); omitted means domain.DefaultSLOWindow (30 days). Refused with
	// a target of 0 and for other actions.
	SLOWindow domain.Duration `json:"slo_window,omitempty"`
	Actor     string          `json:"actor"`
	Reason    string          `json:"reason"`
	// ValidUntil, when set, is the moment after which a breaker-worker
	// refuses the command (rejected event, code command_expired).
	ValidUntil time.Time `json:"valid_until,omitzero"`
}

// Expired reports whether c, applied at now, is past its ValidUntil.
func (c GovernanceCommand) Expired(now time.Time) bool {
	return !c.ValidUntil.IsZero() && now.After(c.ValidUntil)
}

const payloadGovernance = "governance command"

// Validate checks the command: a known action, a level in 0..3 exactly for
// set_emergency_level, slo_target (0, or in (0, 1)) exactly for
// set_slo_target with an optional slo_window within
// [domain.MinSLOWindow, domain.MaxSLOWindow] when the target is not 0, and
// actor and reason (every governance action is manual).
func (g GovernanceCommand) Validate() error {
	if g.Action == "" {
		return fieldErr(ErrMissingField, payloadGovernance, "action", "is required (one of %s)", list(GovernanceActions))
	}
	if !g.Action.Valid() {
		return fieldErr(ErrInvalidValue, payloadGovernance, "action", "is %q; want one of %s", clip(string(g.Action), 64), list(GovernanceActions))
	}
	if g.Action == ActionSetEmergencyLevel {
		if g.Level == nil {
			return fieldErr(ErrMissingField, payloadGovernance, "level", "is required for set_emergency_level (0..3)")
		}
		if !g.Level.Valid() {
			return fieldErr(ErrInvalidValue, payloadGovernance, "level", "is %d; want 0..3", int(*g.Level))
		}
	} else if g.Level != nil {
		return fieldErr(ErrInvalidValue, payloadGovernance, "level", "is given for action %q; only set_emergency_level takes a level", g.Action)
	}
	if g.Action == ActionSetSLOTarget {
		if g.SLOTarget == nil {
			return fieldErr(ErrMissingField, payloadGovernance, "slo_target", "is required for set_slo_target (e.g. 0.999, or 0 to turn the error-budget gate off)")
		}
		t := *g.SLOTarget
		if t != 0 && domain.ValidateSLOTarget(t) != nil {
			return fieldErr(ErrInvalidValue, payloadGovernance, "slo_target", "is %v; want a fraction greater than 0 and less than 1 (e.g. 0.999), or 0 to turn the gate off", t)
		}
		if g.SLOWindow != 0 {
			if t == 0 {
				return fieldErr(ErrInvalidValue, payloadGovernance, "slo_window", "is given with slo_target 0; turning the gate off takes no window")
			}
			if w := g.SLOWindow.D(); w < domain.MinSLOWindow || w > domain.MaxSLOWindow {
				return fieldErr(ErrInvalidValue, payloadGovernance, "slo_window", "is %s; want %s..%s", g.SLOWindow, domain.MinSLOWindow, domain.MaxSLOWindow)
			}
		}
	} else {
		if g.SLOTarget != nil {
			return fieldErr(ErrInvalidValue, payloadGovernance, "slo_target", "is given for action %q; only set_slo_target takes one", g.Action)
		}
		if g.SLOWindow != 0 {
			return fieldErr(ErrInvalidValue, payloadGovernance, "slo_window", "is given for action %q; only set_slo_target takes one", g.Action)
		}
	}
	if err := checkText(payloadGovernance, "actor", g.Actor, MaxActorLen, true, false); err != nil {
		return err
	}
	return checkText(payloadGovernance, "reason", g.Reason, MaxReasonLen, true, false)
}

// DeadLetter is the body of baldur.dlq.<svc>: a failed operation to keep and
// replay. The entry's id is the message's ce-id.
type DeadLetter struct {
	Domain         domain.FailureDomain `json:"domain"`
	FailureType    string               `json:"failure_type"`
	Operation      string               `json:"operation"`
	IdempotencyKey string               `json:"idempotency_key,omitempty"`
	EntityType     string               `json:"entity_type,omitempty"`
	EntityID       string               `json:"entity_id,omitempty"`
	// Request is the operation's input, any JSON, at most MaxRequestSize
	// bytes; it is the body of every replay delivery.
	Request      json.RawMessage `json:"request,omitempty"`
	ErrorCode    string          `json:"error_code,omitempty"`
	ErrorMessage string          `json:"error_message,omitempty"`
	// Priority defaults to normal.
	Priority domain.Priority `json:"priority,omitempty"`
	// MaxRetries defaults to domain.DefaultMaxRetries; 0 means no retry.
	MaxRetries *int `json:"max_retries,omitempty"`
	// Metadata is a JSON object of at most MaxMetadataSize bytes.
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

const payloadDeadLetter = "dead letter"

// Validate checks the dead letter: known domain and priority, failure_type a
// token, operation present, text fields within their limits and free of
// control characters, request valid JSON within MaxRequestSize, metadata a
// JSON object within MaxMetadataSize, max_retries in 0..MaxMaxRetries.
func (d DeadLetter) Validate() error {
	if d.Domain == "" {
		return fieldErr(ErrMissingField, payloadDeadLetter, "domain", "is required (one of %s)", list(domain.FailureDomains))
	}
	if !oneOf(d.Domain, domain.FailureDomains) {
		return fieldErr(ErrInvalidValue, payloadDeadLetter, "domain", "is %q; want one of %s", clip(string(d.Domain), 64), list(domain.FailureDomains))
	}
	if d.FailureType == "" {
		return fieldErr(ErrMissingField, payloadDeadLetter, "failure_type", "is required")
	}
	if err := checkToken(payloadDeadLetter, "failure_type", d.FailureType); err != nil {
		return err
	}
	for _, f := range []struct {
		name     string
		v        string
		max      int
		required bool
	}{
		{"operation", d.Operation, MaxOperationLen, true},
		{"idempotency_key", d.IdempotencyKey, MaxKeyLen, false},
		{"entity_type", d.EntityType, MaxEntityTypeLen, false},
		{"entity_id", d.EntityID, MaxKeyLen, false},
		{"error_code", d.ErrorCode, MaxErrorCodeLen, false},
	} {
		if err := checkText(payloadDeadLetter, f.name, f.v, f.max, f.required, false); err != nil {
			return err
		}
	}
	if err := checkText(payloadDeadLetter, "error_message", d.ErrorMessage, MaxErrorMessageLen, false, true); err != nil {
		return err
	}
	if d.Priority != "" && !oneOf(d.Priority, domain.Priorities) {
		return fieldErr(ErrInvalidValue, payloadDeadLetter, "priority", "is %q; want one of %s", clip(string(d.Priority), 64), list(domain.Priorities))
	}
	if d.MaxRetries != nil && (*d.MaxRetries < 0 || *d.MaxRetries > MaxMaxRetries) {
		return fieldErr(ErrInvalidValue, payloadDeadLetter, "max_retries", "is %d; want 0..%d", *d.MaxRetries, MaxMaxRetries)
	}
	if len(d.Request) > MaxRequestSize {
		return fieldErr(ErrTooLarge, payloadDeadLetter, "request", "is %d bytes, at most %d are allowed", len(d.Request), MaxRequestSize)
	}
	if len(d.Request) > 0 && !json.Valid(d.Request) {
		return fieldErr(ErrInvalidValue, payloadDeadLetter, "request", "is not valid JSON")
	}
	if err := domain.CheckStorableJSON(d.Request); err != nil {
		return fieldErr(ErrInvalidValue, payloadDeadLetter, "request", "cannot be stored: %v", err)
	}
	if len(d.Metadata) > MaxMetadataSize {
		return fieldErr(ErrTooLarge, payloadDeadLetter, "metadata", "is %d bytes, at most %d are allowed", len(d.Metadata), MaxMetadataSize)
	}
	if len(d.Metadata) > 0 {
		if !json.Valid(d.Metadata) {
			return fieldErr(ErrInvalidValue, payloadDeadLetter, "metadata", "is not valid JSON")
		}
		if err := domain.CheckStorableJSON(d.Metadata); err != nil {
			return fieldErr(ErrInvalidValue, payloadDeadLetter, "metadata", "cannot be stored: %v", err)
		}
		if k := jsonKind(d.Metadata); d.Metadata[skipSpace(d.Metadata, 0)] != '{' {
			return fieldErr(ErrInvalidValue, payloadDeadLetter, "metadata", "must be a JSON object, got %s", k)
		}
	}
	return nil
}

// Entry returns the dead letter as a new pending DLQ entry with id (the
// message's ce-id) for service, created at now: priority and max_retries
// defaulted, due at once, expiring after domain.DefaultRetention.
func (d DeadLetter) Entry(id, service string, now time.Time) domain.DLQEntry {
	prio := d.Priority
	if prio == "" {
		prio = domain.PriorityNormal
	}
	maxRetries := domain.DefaultMaxRetries
	if d.MaxRetries != nil {
		maxRetries = *d.MaxRetries
	}
	return domain.DLQEntry{
		ID: id, Service: service, Domain: d.Domain, FailureType: d.FailureType,
		Operation: d.Operation, IdempotencyKey: d.IdempotencyKey, EntityType: d.EntityType,
		EntityID: d.EntityID, Request: d.Request, ErrorCode: d.ErrorCode,
		ErrorMessage: d.ErrorMessage, Priority: prio, Metadata: d.Metadata,
		Status: domain.DLQPending, MaxRetries: maxRetries, NextAttemptAt: now,
		LastError: d.ErrorMessage, CreatedAt: now, UpdatedAt: now,
		ExpiresAt: now.Add(domain.DefaultRetention),
	}
}

// Replay delivery headers, set on a request to baldur.replay.<svc> next to the
// CloudEvents headers.
const (
	// HeaderDLQID is the dead-letter entry's id.
	HeaderDLQID = "Baldur-Dlq-Id"
	// HeaderAttempt is the attempt number, from 1.
	HeaderAttempt = "Baldur-Attempt"
	// HeaderOperation is the dead letter's operation.
	HeaderOperation = "Baldur-Operation"
	// HeaderIdempotencyKey is the dead letter's idempotency key, when it has
	// one.
	HeaderIdempotencyKey = "Baldur-Idempotency-Key"
)

// ReplayReply is a service's answer to a replay delivery.
type ReplayReply struct {
	OK bool `json:"ok"`
	// Error says why the replay failed; required when OK is false.
	Error string `json:"error,omitempty"`
	// Retryable asks for another attempt (within max_retries); otherwise the
	// entry goes to requires_review.
	Retryable bool `json:"retryable,omitempty"`
}

const payloadReplayReply = "replay reply"

// Validate checks the reply: an error message when not ok (at most
// MaxErrorMessageLen bytes), and neither error nor retryable when ok.
func (r ReplayReply) Validate() error {
	if r.OK {
		if r.Error != "" {
			return fieldErr(ErrInvalidValue, payloadReplayReply, "error", "is given with \"ok\": true")
		}
		if r.Retryable {
			return fieldErr(ErrInvalidValue, payloadReplayReply, "retryable", "is true with \"ok\": true")
		}
		return nil
	}
	return checkText(payloadReplayReply, "error", r.Error, MaxErrorMessageLen, true, true)
}

// PermitRequest is the body of a request to baldur.permit.<svc>.
type PermitRequest struct {
	// Node is the asking node's id.
	Node string `json:"node"`
}

const payloadPermitRequest = "permit request"

// Validate checks that node is given, printable and at most MaxNodeLen bytes.
func (p PermitRequest) Validate() error {
	return checkText(payloadPermitRequest, "node", p.Node, MaxNodeLen, true, false)
}

// PermitReply answers a PermitRequest.
type PermitReply struct {
	Granted bool `json:"granted"`
	// State is the breaker's state after the request.
	State domain.State `json:"state"`
	// Generation is the breaker's generation after the request.
	Generation uint64 `json:"generation"`
}

const payloadPermitReply = "permit reply"

// Validate checks that state is a known state.
func (p PermitReply) Validate() error { return checkState(payloadPermitReply, "state", p.State) }

// WindowSummary is the breaker's window at a transition: successes,
// failures, slow_calls, failure_rate and slow_call_rate (percent, 0..100) and
// failing_nodes. It is domain.WindowStats, the totals of the breaker state's
// window, so the two cannot drift apart.
type WindowSummary = domain.WindowStats

func validateWindow(payload string, w WindowSummary) error {
	if w.Successes < 0 || w.Failures < 0 || w.SlowCalls < 0 || w.FailingNodes < 0 {
		return fieldErr(ErrInvalidValue, payload, "window", "has a negative count")
	}
	if !(w.FailureRate >= 0 && w.FailureRate <= 100) {
		return fieldErr(ErrInvalidValue, payload, "window.failure_rate", "is %v; want a percentage in [0, 100]", w.FailureRate)
	}
	if !(w.SlowCallRate >= 0 && w.SlowCallRate <= 100) {
		return fieldErr(ErrInvalidValue, payload, "window.slow_call_rate", "is %v; want a percentage in [0, 100]", w.SlowCallRate)
	}
	return nil
}

// TransitionEvent is the body of baldur.event.breaker.<svc>.<event>: one
// transition of a breaker, emitted exactly once (Nats-Msg-Id
// "<svc>.<generation>").
type TransitionEvent struct {
	Service string       `json:"service"`
	From    domain.State `json:"from"`
	To      domain.State `json:"to"`
	// FromMode and Mode are the breaker's mode before and after; a
	// mode_changed event is a change of mode (or override) alone. Additions
	// to the DESIGN §3 field list, as in domain.Transition.
	FromMode      domain.Mode    `json:"from_mode"`
	Mode          domain.Mode    `json:"mode"`
	Trigger       domain.Trigger `json:"trigger"`
	TriggerReplay bool           `json:"trigger_replay"`
	Generation    uint64         `json:"generation"`
	Actor         string         `json:"actor,omitempty"`
	Reason        string         `json:"reason,omitempty"`
	At            time.Time      `json:"at"`
	Window        WindowSummary  `json:"window"`
	// KillSwitchOverride marks a manual transition applied through the kill
	// switch with override_kill_switch.
	KillSwitchOverride bool `json:"kill_switch_override,omitempty"`
}

// NewTransitionEvent returns the event of a transition the fold reported.
// TransitionEvent has exactly the fields of domain.Transition, so this is a
// conversion that stops compiling if the two drift apart.
func NewTransitionEvent(t domain.Transition) TransitionEvent { return TransitionEvent(t) }

// Transition returns the event as the domain's transition.
func (e TransitionEvent) Transition() domain.Transition { return domain.Transition(e) }

const payloadTransition = "transition event"

var triggers = []domain.Trigger{domain.TriggerAuto, domain.TriggerManual, domain.TriggerHalfOpenFailure,
	domain.TriggerRecoveryTimeout, domain.TriggerManualExpired, domain.TriggerOverrideExpired,
	domain.TriggerStuckHalfOpen}

var modes = []domain.Mode{domain.ModeAuto, domain.ModeForcedOpen, domain.ModeForcedClosed,
	domain.ModeDisabled, domain.ModeMetricsOnly}

// Event returns the subject's event name for the transition.
func (e TransitionEvent) Event() BreakerEvent { return BreakerEventFor(e.From, e.To) }

// Validate checks the event: a valid service, known states, mode and trigger,
// a time, and a sane window.
func (e TransitionEvent) Validate() error {
	if err := checkService(payloadTransition, e.Service); err != nil {
		return err
	}
	if err := checkState(payloadTransition, "from", e.From); err != nil {
		return err
	}
	if err := checkState(payloadTransition, "to", e.To); err != nil {
		return err
	}
	if e.FromMode != "" && !oneOf(e.FromMode, modes) {
		return fieldErr(ErrInvalidValue, payloadTransition, "from_mode", "is %q; want one of %s", clip(string(e.FromMode), 64), list(modes))
	}
	if e.Mode != "" && !oneOf(e.Mode, modes) {
		return fieldErr(ErrInvalidValue, payloadTransition, "mode", "is %q; want one of %s", clip(string(e.Mode), 64), list(modes))
	}
	if !oneOf(e.Trigger, triggers) {
		return fieldErr(ErrInvalidValue, payloadTransition, "trigger", "is %q; want one of %s", clip(string(e.Trigger), 64), list(triggers))
	}
	if err := checkText(payloadTransition, "actor", e.Actor, MaxActorLen, false, false); err != nil {
		return err
	}
	if err := checkText(payloadTransition, "reason", e.Reason, MaxReasonLen, false, false); err != nil {
		return err
	}
	if e.At.IsZero() {
		return fieldErr(ErrMissingField, payloadTransition, "at", "is required")
	}
	if e.KillSwitchOverride && e.Trigger != domain.TriggerManual {
		return fieldErr(ErrInvalidValue, payloadTransition, "kill_switch_override", "is true with trigger %q; only a manual transition overrides the kill switch", e.Trigger)
	}
	return validateWindow(payloadTransition, e.Window)
}

// ArchivedEvent is the body of baldur.event.breaker.<svc>.archived: a
// breaker was deleted by a breaker-worker applying the watchdog's archive
// command — a cell-scoped breaker whose cell no longer owns its service on
// the ring (trigger cell_unmapped), or a breaker idle for the watchdog's
// idle period (trigger idle; Cell is "" unless the name is cell-scoped). It
// is emitted once (Nats-Msg-Id "<svc>.<generation>.archived") and carries
// the breaker's last state. Archiving is not a transition: Generation is
// the breaker's last one.
type ArchivedEvent struct {
	Service    string         `json:"service"`
	Cell       string         `json:"cell"`
	State      domain.State   `json:"state"`
	Mode       domain.Mode    `json:"mode"`
	Generation uint64         `json:"generation"`
	Trigger    domain.Trigger `json:"trigger"`
	Actor      string         `json:"actor"`
	Reason     string         `json:"reason"`
	At         time.Time      `json:"at"`
	Window     WindowSummary  `json:"window"`
}

// NewArchivedEvent returns the event of a breaker the fold archived.
// ArchivedEvent has exactly the fields of domain.Archival, so this is a
// conversion that stops compiling if the two drift apart.
func NewArchivedEvent(a domain.Archival) ArchivedEvent { return ArchivedEvent(a) }

const payloadArchived = "archived event"

// Validate checks the event: trigger cell_unmapped with a cell-scoped
// service, or trigger idle with any service; Cell the service's cell part
// ("" for a name without one); a known state and mode, an actor, a reason,
// a time and a sane window.
func (e ArchivedEvent) Validate() error {
	if err := checkService(payloadArchived, e.Service); err != nil {
		return err
	}
	if e.Trigger != domain.TriggerCellUnmapped && e.Trigger != domain.TriggerIdle {
		return fieldErr(ErrInvalidValue, payloadArchived, "trigger", "is %q; want %s or %s", clip(string(e.Trigger), 64), domain.TriggerCellUnmapped, domain.TriggerIdle)
	}
	_, cell, ok := domain.ParseCellBreakerName(e.Service)
	if !ok && e.Trigger == domain.TriggerCellUnmapped {
		return fieldErr(ErrInvalidValue, payloadArchived, "service", "is %q, not a cell-scoped breaker <svc>%s<cell>", e.Service, domain.CellSeparator)
	}
	if e.Cell != cell {
		return fieldErr(ErrInvalidValue, payloadArchived, "cell", "is %q; the service %q names cell %q", clip(e.Cell, 64), e.Service, cell)
	}
	if err := checkState(payloadArchived, "state", e.State); err != nil {
		return err
	}
	if !oneOf(e.Mode, modes) {
		return fieldErr(ErrInvalidValue, payloadArchived, "mode", "is %q; want one of %s", clip(string(e.Mode), 64), list(modes))
	}
	if err := checkText(payloadArchived, "actor", e.Actor, MaxActorLen, true, false); err != nil {
		return err
	}
	if err := checkText(payloadArchived, "reason", e.Reason, MaxReasonLen, true, false); err != nil {
		return err
	}
	if e.At.IsZero() {
		return fieldErr(ErrMissingField, payloadArchived, "at", "is required")
	}
	return validateWindow(payloadArchived, e.Window)
}

// ReplayEntryEvent is the body of the replay events about one entry:
// baldur.event.replay.<svc>.completed, .failed and .escalated (the seed's
// ReplayResult).
type ReplayEntryEvent struct {
	Service   string `json:"service"`
	EntryID   string `json:"entry_id"`
	Operation string `json:"operation,omitempty"`
	// Attempt is the attempt number, from 1.
	Attempt int `json:"attempt"`
	// Status is the entry's status after the attempt.
	Status domain.DLQStatus `json:"status"`
	// Error is the service's error (failed, escalated).
	Error     string `json:"error,omitempty"`
	Retryable bool   `json:"retryable,omitempty"`
	// NextAttemptAt is when a failed entry is due again.
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	// Reason says why an entry was escalated (e.g. max_retries_exhausted).
	Reason string    `json:"reason,omitempty"`
	Actor  string    `json:"actor,omitempty"`
	At     time.Time `json:"at"`
}

const payloadReplayEntry = "replay event"

// Validate checks the event.
func (e ReplayEntryEvent) Validate() error {
	if err := checkService(payloadReplayEntry, e.Service); err != nil {
		return err
	}
	if err := checkText(payloadReplayEntry, "entry_id", e.EntryID, MaxKeyLen, true, false); err != nil {
		return err
	}
	if err := checkText(payloadReplayEntry, "operation", e.Operation, MaxOperationLen, false, false); err != nil {
		return err
	}
	if e.Attempt < 0 {
		return fieldErr(ErrInvalidValue, payloadReplayEntry, "attempt", "is %d; must not be negative", e.Attempt)
	}
	if !oneOf(e.Status, domain.DLQStatuses) {
		return fieldErr(ErrInvalidValue, payloadReplayEntry, "status", "is %q; want one of %s", clip(string(e.Status), 64), list(domain.DLQStatuses))
	}
	if err := checkText(payloadReplayEntry, "error", e.Error, MaxErrorMessageLen, false, true); err != nil {
		return err
	}
	if err := checkText(payloadReplayEntry, "reason", e.Reason, MaxReasonLen, false, false); err != nil {
		return err
	}
	if err := checkText(payloadReplayEntry, "actor", e.Actor, MaxActorLen, false, false); err != nil {
		return err
	}
	if e.At.IsZero() {
		return fieldErr(ErrMissingField, payloadReplayEntry, "at", "is required")
	}
	return nil
}

// ReplayBlockedEvent is the body of baldur.event.replay.<svc>.blocked:
// governance refused a replay (seed DLQ_REPLAY_BLOCKED).
type ReplayBlockedEvent struct {
	Service string `json:"service"`
	// Gate is the rule that blocked: kill_switch, emergency_level or
	// error_budget.
	Gate domain.GovernanceBlocker `json:"gate"`
	// Reason explains the block, e.g. "error budget at 4% (gate 10%)".
	Reason string `json:"reason"`
	// EntryID is set when a single replay was blocked.
	EntryID string    `json:"entry_id,omitempty"`
	Actor   string    `json:"actor,omitempty"`
	At      time.Time `json:"at"`
}

const payloadReplayBlocked = "replay blocked event"

var gates = []domain.GovernanceBlocker{domain.BlockerKillSwitch, domain.BlockerEmergencyLevel, domain.BlockerErrorBudget}

// Validate checks the event.
func (e ReplayBlockedEvent) Validate() error {
	if err := checkService(payloadReplayBlocked, e.Service); err != nil {
		return err
	}
	if !oneOf(e.Gate, gates) {
		return fieldErr(ErrInvalidValue, payloadReplayBlocked, "gate", "is %q; want one of %s", clip(string(e.Gate), 64), list(gates))
	}
	if err := checkText(payloadReplayBlocked, "reason", e.Reason, MaxReasonLen, true, false); err != nil {
		return err
	}
	if err := checkText(payloadReplayBlocked, "entry_id", e.EntryID, MaxKeyLen, false, false); err != nil {
		return err
	}
	if err := checkText(payloadReplayBlocked, "actor", e.Actor, MaxActorLen, false, false); err != nil {
		return err
	}
	if e.At.IsZero() {
		return fieldErr(ErrMissingField, payloadReplayBlocked, "at", "is required")
	}
	return nil
}

// ReplayBatchEvent is the body of baldur.event.replay.<svc>.batch_completed:
// the summary of one drain (the seed's BatchReplayResult).
type ReplayBatchEvent struct {
	Service string `json:"service"`
	// Trigger is what started the drain: circuit_close, operator or
	// continuous.
	Trigger               string    `json:"trigger"`
	Actor                 string    `json:"actor,omitempty"`
	Total                 int       `json:"total"`
	SuccessCount          int       `json:"success_count"`
	FailedCount           int       `json:"failed_count"`
	SkippedCount          int       `json:"skipped_count"`
	EscalatedCount        int       `json:"escalated_count"`
	Batches               int       `json:"batches"`
	GovernanceBlocked     bool      `json:"governance_blocked"`
	GovernanceBlockReason string    `json:"governance_block_reason,omitempty"`
	InflightSkipped       bool      `json:"inflight_skipped"`
	PriorityUsed          bool      `json:"priority_used"`
	DomainsProcessed      []string  `json:"domains_processed,omitempty"`
	StartedAt             time.Time `json:"started_at"`
	At                    time.Time `json:"at"`
}

// Replay batch triggers.
const (
	BatchTriggerCircuitClose = "circuit_close"
	BatchTriggerOperator     = "operator"
	BatchTriggerContinuous   = "continuous"
)

const payloadReplayBatch = "replay batch event"

// Validate checks the event: a known trigger, non-negative counts that add up
// (success + failed + skipped = total), and times.
func (e ReplayBatchEvent) Validate() error {
	if err := checkService(payloadReplayBatch, e.Service); err != nil {
		return err
	}
	if !oneOf(e.Trigger, []string{BatchTriggerCircuitClose, BatchTriggerOperator, BatchTriggerContinuous}) {
		return fieldErr(ErrInvalidValue, payloadReplayBatch, "trigger", "is %q; want circuit_close, operator or continuous", clip(e.Trigger, 64))
	}
	if err := checkText(payloadReplayBatch, "actor", e.Actor, MaxActorLen, false, false); err != nil {
		return err
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"total", e.Total}, {"success_count", e.SuccessCount}, {"failed_count", e.FailedCount},
		{"skipped_count", e.SkippedCount}, {"escalated_count", e.EscalatedCount}, {"batches", e.Batches}} {
		if c.v < 0 {
			return fieldErr(ErrInvalidValue, payloadReplayBatch, c.name, "is %d; counts must not be negative", c.v)
		}
	}
	if e.SuccessCount+e.FailedCount+e.SkippedCount != e.Total {
		return fieldErr(ErrInvalidValue, payloadReplayBatch, "total", "is %d, but success_count + failed_count + skipped_count is %d", e.Total, e.SuccessCount+e.FailedCount+e.SkippedCount)
	}
	if e.EscalatedCount > e.FailedCount {
		return fieldErr(ErrInvalidValue, payloadReplayBatch, "escalated_count", "is %d, more than failed_count (%d)", e.EscalatedCount, e.FailedCount)
	}
	if err := checkText(payloadReplayBatch, "governance_block_reason", e.GovernanceBlockReason, MaxReasonLen, false, false); err != nil {
		return err
	}
	for _, d := range e.DomainsProcessed {
		if !oneOf(domain.FailureDomain(d), domain.FailureDomains) {
			return fieldErr(ErrInvalidValue, payloadReplayBatch, "domains_processed", "has %q; want failure domains (%s)", clip(d, 64), list(domain.FailureDomains))
		}
	}
	if e.At.IsZero() {
		return fieldErr(ErrMissingField, payloadReplayBatch, "at", "is required")
	}
	if e.StartedAt.After(e.At) {
		return fieldErr(ErrInvalidValue, payloadReplayBatch, "started_at", "is after at")
	}
	return nil
}

// GovernanceChange is the body of baldur.event.governance.<key>: a change of
// one key of KV baldur_governance. Old and New are the key's JSON values
// (absent or null when the key did not or does not exist).
type GovernanceChange struct {
	Key    GovernanceKey   `json:"key"`
	Old    json.RawMessage `json:"old,omitempty"`
	New    json.RawMessage `json:"new,omitempty"`
	Actor  string          `json:"actor,omitempty"`
	Reason string          `json:"reason,omitempty"`
	At     time.Time       `json:"at"`
}

const payloadGovernanceChange = "governance change"

// Validate checks the event: a known key, valid JSON values, and a time.
func (g GovernanceChange) Validate() error {
	if !g.Key.Valid() {
		return fieldErr(ErrInvalidValue, payloadGovernanceChange, "key", "is %q; want one of %s", clip(string(g.Key), 64), list(GovernanceKeys))
	}
	if len(g.Old) > 0 && !json.Valid(g.Old) {
		return fieldErr(ErrInvalidValue, payloadGovernanceChange, "old", "is not valid JSON")
	}
	if len(g.New) > 0 && !json.Valid(g.New) {
		return fieldErr(ErrInvalidValue, payloadGovernanceChange, "new", "is not valid JSON")
	}
	if err := checkText(payloadGovernanceChange, "actor", g.Actor, MaxActorLen, false, false); err != nil {
		return err
	}
	if err := checkText(payloadGovernanceChange, "reason", g.Reason, MaxReasonLen, false, false); err != nil {
		return err
	}
	if g.At.IsZero() {
		return fieldErr(ErrMissingField, payloadGovernanceChange, "at", "is required")
	}
	return nil
}

// Rejected is the body of baldur.event.rejected.<kind>: an input a worker
// refused, and why. NewRejected builds it from a decode error.
type Rejected struct {
	Kind RejectedKind `json:"kind"`
	// Code is ErrorCode of the error ("too_large", "unknown_field", ...). An
	// addition to the DESIGN §3 field list, for counting by cause.
	Code    string `json:"code"`
	Subject string `json:"subject"`
	// Reason is the error's message.
	Reason string `json:"reason"`
	// CEID, CEType and Source are the message's ce-id, ce-type and ce-source
	// as received (clipped), when it had them.
	CEID   string `json:"ce_id,omitempty"`
	CEType string `json:"ce_type,omitempty"`
	Source string `json:"source,omitempty"`
	// Size is the body's size in bytes.
	Size int       `json:"size"`
	At   time.Time `json:"at"`
}

const payloadRejected = "rejected event"

// Validate checks the event.
func (r Rejected) Validate() error {
	if !r.Kind.Valid() {
		return fieldErr(ErrInvalidValue, payloadRejected, "kind", "is %q; want one of %s", clip(string(r.Kind), 64), list(RejectedKinds))
	}
	if r.Reason == "" {
		return fieldErr(ErrMissingField, payloadRejected, "reason", "is required")
	}
	if r.Size < 0 {
		return fieldErr(ErrInvalidValue, payloadRejected, "size", "is %d; must not be negative", r.Size)
	}
	if r.At.IsZero() {
		return fieldErr(ErrMissingField, payloadRejected, "at", "is required")
	}
	return nil
}

func checkService(payload, svc string) error {
	if svc == "" {
		return fieldErr(ErrMissingField, payload, "service", "is required")
	}
	if err := ValidateServiceName(svc); err != nil {
		return &FieldError{Payload: payload, Field: "service", Problem: "is invalid (" + strings.TrimPrefix(err.Error(), ErrInvalidName.Error()+": ") + ")", Err: ErrInvalidValue}
	}
	return nil
}

func checkState(payload, field string, s domain.State) error {
	switch s {
	case domain.StateClosed, domain.StateOpen, domain.StateHalfOpen:
		return nil
	}
	return fieldErr(ErrInvalidValue, payload, field, "is %q; want closed, open or half_open", clip(string(s), 64))
}

// checkText checks a free-text field: present when required (and not only
// spaces), at most max bytes, valid UTF-8 without control characters (tab
// and newlines allowed when multiline).
func checkText(payload, field, s string, max int, required, multiline bool) error {
	if required && strings.TrimSpace(s) == "" {
		return fieldErr(ErrMissingField, payload, field, "is required")
	}
	if len(s) > max {
		return fieldErr(ErrTooLarge, payload, field, "is %d bytes long, at most %d are allowed", len(s), max)
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 || c == 0x7f) && !(multiline && (c == '\t' || c == '\n' || c == '\r')) {
				return fieldErr(ErrInvalidValue, payload, field, "has the control character %q at position %d", c, i)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return fieldErr(ErrInvalidValue, payload, field, "has invalid UTF-8 at position %d", i)
		}
		i += size
	}
	return nil
}

// checkToken checks a failure type: ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$.
func checkToken(payload, field, s string) error {
	if s == "" {
		return fieldErr(ErrInvalidValue, payload, field, "has an empty name")
	}
	if len(s) > MaxTokenLen {
		return fieldErr(ErrInvalidValue, payload, field, "has %q, %d bytes long; at most %d are allowed", clip(s, 80), len(s), MaxTokenLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) || (i > 0 && (c == '_' || c == '-' || c == '.' || c == ':')) {
			continue
		}
		return fieldErr(ErrInvalidValue, payload, field, "has %q, with %s at position %d; names are A-Z, a-z, 0-9, '_', '-', '.', ':' and start with a letter or digit", clip(s, 80), describeChar(s[i:]), i)
	}
	return nil
}

// SLABreachedEvent is the body of baldur.event.dlq.<svc>.sla_breached: a dead
// letter stayed pending longer than its failure domain's SLA (the seed's
// get_sla_thresholds()). The watchdog publishes it once per entry, when it
// flags the entry.
type SLABreachedEvent struct {
	Service string `json:"service"`
	EntryID string `json:"entry_id"`
	// Domain is the entry's failure domain.
	Domain domain.FailureDomain `json:"domain"`
	// SLAHours is the domain's threshold when the entry was flagged.
	SLAHours int `json:"sla_hours"`
	// At is when the entry was flagged.
	At time.Time `json:"at"`
}

const payloadSLABreached = "sla breached event"

// Validate checks the event: a service, an entry id, a known domain, hours
// within the SLA range, and a time.
func (e SLABreachedEvent) Validate() error {
	if err := checkService(payloadSLABreached, e.Service); err != nil {
		return err
	}
	if err := checkText(payloadSLABreached, "entry_id", e.EntryID, MaxKeyLen, true, false); err != nil {
		return err
	}
	if !oneOf(e.Domain, domain.FailureDomains) {
		return fieldErr(ErrInvalidValue, payloadSLABreached, "domain", "is %q; want one of %s", clip(string(e.Domain), 64), list(domain.FailureDomains))
	}
	if e.SLAHours < domain.MinSLAHours || e.SLAHours > domain.MaxSLAHours {
		return fieldErr(ErrInvalidValue, payloadSLABreached, "sla_hours", "is %d; want %d..%d", e.SLAHours, domain.MinSLAHours, domain.MaxSLAHours)
	}
	if e.At.IsZero() {
		return fieldErr(ErrMissingField, payloadSLABreached, "at", "is required")
	}
	return nil
}
