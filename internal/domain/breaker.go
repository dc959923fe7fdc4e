package domain

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Breaker is one service's circuit breaker as stored in the KV bucket
// baldur_breakers under the service's name (DESIGN §3 "Breaker state"). It is a
// value: Apply returns a new Breaker and never modifies the one it is called on
// or anything it points to, so a value read from the bucket can be shared.
//
// In JSON, times that are not set (opened_at and recovery_at of a closed
// breaker, half_open.started_at outside HALF_OPEN) are left out, as are manual,
// override and last_transition when there is none, and last_command_id before
// the first command. Everything else is always present.
type Breaker struct {
	// Service is the service the breaker protects.
	Service string `json:"service"`
	// State is closed, open or half_open.
	State State `json:"state"`
	// Mode says who decides the state: the rules (auto) or an operator.
	Mode Mode `json:"mode"`
	// Generation is 0 for a new breaker and grows by exactly one per
	// transition; "<service>.<generation>" identifies a transition event.
	Generation uint64 `json:"generation"`
	// OpenedAt is when the breaker last opened; zero while closed.
	OpenedAt time.Time `json:"opened_at,omitzero"`
	// RecoveryAt is when an OPEN breaker may start probing; zero while closed.
	RecoveryAt time.Time `json:"recovery_at,omitzero"`
	// Reopens counts re-opens from HALF_OPEN since the breaker last closed;
	// the recovery timeout is multiplied by recovery_backoff^reopens.
	Reopens int `json:"reopens"`
	// Window is the sliding window of reported outcomes.
	Window Window `json:"window"`
	// ConsecutiveFailures is the number of failures since the last success,
	// across all reporting nodes.
	ConsecutiveFailures int64 `json:"consecutive_failures"`
	// HalfOpen is the current half-open period; zero outside HALF_OPEN.
	HalfOpen HalfOpen `json:"half_open"`
	// Manual records the operator behind a non-auto mode.
	Manual *Manual `json:"manual,omitempty"`
	// Override is the threshold override in force, if any.
	Override *Override `json:"override,omitempty"`
	// LastTransition is the most recent transition.
	LastTransition *LastTransition `json:"last_transition,omitempty"`
	// LastCommandID is the id (ce-id) of the last applied command; a command
	// with the same id is a duplicate and is ignored.
	LastCommandID string `json:"last_command_id,omitempty"`
	// LastSeq is the stream sequence of the last folded outcome report; a
	// report at or below it is a redelivery and is ignored.
	LastSeq uint64 `json:"last_seq"`
	// ActiveAt is when the breaker last folded an outcome report or applied
	// a command other than archive: what its idleness is measured from
	// (IdleSince). Zero in a state written before the field existed.
	ActiveAt time.Time `json:"active_at,omitzero"`
	// PendingEvents are transitions written with the state whose events
	// have not been confirmed as published. The writer publishes them right
	// after the write and clears the list; if it dies in between, the next
	// writer of the key publishes them again (the event id
	// <service>.<generation> makes the stream drop a duplicate). The fold
	// never reads or changes this list.
	PendingEvents []Transition `json:"pending_events,omitempty"`
}

// HalfOpen is the bookkeeping of one half-open period.
type HalfOpen struct {
	// Permits is the number of probes this period may admit: the effective
	// half_open_max_calls when the period started.
	Permits int `json:"permits"`
	// Issued is the number of permits granted in this period.
	Issued int `json:"issued"`
	// Successes counts probe successes reported since the breaker entered
	// HALF_OPEN; success_threshold of them close it.
	Successes int64 `json:"successes"`
	// StartedAt is when the period started.
	StartedAt time.Time `json:"started_at,omitzero"`
}

// Manual records an operator's manual mode.
type Manual struct {
	// Actor is who set the mode.
	Actor string `json:"actor"`
	// Reason is why.
	Reason string `json:"reason"`
	// ExpiresAt is when a forced mode ends by itself (to HALF_OPEN, mode
	// auto). Zero for disabled and metrics_only, which last until `auto`.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Override is a threshold override in force on a breaker: the replaced fields,
// who set it, when it expires and how often it was renewed.
type Override struct {
	ThresholdOverride
	// Actor is who set the override.
	Actor string `json:"actor,omitempty"`
	// Reason is why.
	Reason string `json:"reason,omitempty"`
	// ExpiresAt is when the override stops applying.
	ExpiresAt time.Time `json:"expires_at"`
	// Renewals is how often an active override was replaced before it
	// expired, at most MaxOverrideRenewals.
	Renewals int `json:"renewals"`
}

// Active reports whether o is set and has not expired at now. A nil override is
// not active.
func (o *Override) Active(now time.Time) bool {
	return o != nil && now.Before(o.ExpiresAt)
}

// LastTransition is the short record of a breaker's most recent transition.
type LastTransition struct {
	// From is the state before the transition.
	From State `json:"from"`
	// To is the state after it.
	To State `json:"to"`
	// Trigger is why it happened.
	Trigger Trigger `json:"trigger"`
	// At is when it happened.
	At time.Time `json:"at"`
}

// TransitionKind names the event a transition is published as: the state it
// entered, or mode_changed when the state stayed the same.
type TransitionKind string

// Transition kinds, the last token of baldur.event.breaker.<svc>.<kind>.
const (
	TransitionOpened      TransitionKind = "opened"
	TransitionHalfOpened  TransitionKind = "half_opened"
	TransitionClosed      TransitionKind = "closed"
	TransitionModeChanged TransitionKind = "mode_changed"
)

// Transition is one change of a breaker's state, mode or override, as the fold
// reports it; the breaker-worker publishes it as a transition event.
type Transition struct {
	// Service is the breaker's service.
	Service string `json:"service"`
	// From is the state before.
	From State `json:"from"`
	// To is the state after; equal to From for a mode change.
	To State `json:"to"`
	// FromMode is the mode before.
	FromMode Mode `json:"from_mode"`
	// Mode is the mode after.
	Mode Mode `json:"mode"`
	// Trigger is why the transition happened.
	Trigger Trigger `json:"trigger"`
	// TriggerReplay asks the replay-worker to replay the service's backlog.
	TriggerReplay bool `json:"trigger_replay"`
	// Generation is the breaker's generation after the transition.
	Generation uint64 `json:"generation"`
	// Actor is the operator of a manual transition.
	Actor string `json:"actor,omitempty"`
	// Reason is the operator's reason.
	Reason string `json:"reason,omitempty"`
	// At is when it happened.
	At time.Time `json:"at"`
	// Window is the window's totals when it happened.
	Window WindowStats `json:"window"`
	// KillSwitchOverride is true for a manual transition applied while the
	// kill switch was on, through override_kill_switch: the audit log
	// records it as an override.
	KillSwitchOverride bool `json:"kill_switch_override,omitempty"`
}

// Kind is the event kind of t: opened, half_opened or closed when the state
// changed, mode_changed when it did not (a mode change, an override set,
// cleared or expired, a stuck half-open window reset).
func (t Transition) Kind() TransitionKind {
	if t.From == t.To {
		return TransitionModeChanged
	}
	switch t.To {
	case StateOpen:
		return TransitionOpened
	case StateHalfOpen:
		return TransitionHalfOpened
	case StateClosed:
		return TransitionClosed
	}
	return TransitionModeChanged
}

// InputKind says what an Input carries.
type InputKind uint8

// Input kinds.
const (
	// InputReport is an outcome report (Input.Report).
	InputReport InputKind = iota + 1
	// InputCommand is a breaker command (Input.Command).
	InputCommand
	// InputPermit is a half-open permit request from Input.Node.
	InputPermit
	// InputTick is the passing of time: expired manual modes and overrides.
	InputTick
)

// Input is one thing folded into a breaker. Build it with ReportInput,
// CommandInput, PermitInput or TickInput.
type Input struct {
	// Kind says which of the other fields is set.
	Kind InputKind
	// Report is the outcome report of an InputReport.
	Report Report
	// Command is the command of an InputCommand.
	Command Command
	// Node is the requesting node of an InputPermit. The fold does not use
	// it; it is there for the worker's logs and traces.
	Node string
}

// ReportInput folds an outcome report.
func ReportInput(r Report) Input { return Input{Kind: InputReport, Report: r} }

// CommandInput folds a breaker command.
func CommandInput(c Command) Input { return Input{Kind: InputCommand, Command: c} }

// PermitInput asks for a half-open permit on behalf of node.
func PermitInput(node string) Input { return Input{Kind: InputPermit, Node: node} }

// TickInput lets time pass: manual modes and overrides expire.
func TickInput() Input { return Input{Kind: InputTick} }

// Env is what the fold needs besides the breaker and the input: the time, the
// breaker's resolved config (before its override; the fold applies the
// breaker's own override) and the governance facts.
type Env struct {
	// Now is the fold's time.
	Now time.Time
	// Config is the service's resolved config (ResolveConfig).
	Config Config
	// Governance is the fleet's governance snapshot; the kill switch in it
	// refuses manual actions that do not set override_kill_switch.
	Governance Governance
}

// Result says what a fold did besides changing the breaker.
type Result struct {
	// Transitions are the transitions the input caused, in order; each one
	// raised the generation by one. Usually none or one; a tick may expire a
	// manual mode and an override at once.
	Transitions []Transition
	// Changed is true when the returned breaker differs from the input one
	// and must be written back.
	Changed bool
	// Granted is the answer to a permit request.
	Granted bool
	// Applied is true when a command was applied.
	Applied bool
	// Ignored is true for a redelivered report (seq ≤ last_seq) or a
	// duplicate command (id = last_command_id): nothing was folded.
	Ignored bool
	// KillSwitchOverridden is true when a manual command was applied while
	// the kill switch was on because it set override_kill_switch; the worker
	// must audit it.
	KillSwitchOverridden bool
	// Archive is set when an archive command was applied: the worker must
	// delete the breaker's key (by compare-and-set on the revision it read)
	// and publish Archive as the archived event. The returned breaker is the
	// one being archived; archiving is not a transition, so its generation
	// is unchanged. Inputs after it belong to a breaker that starts afresh.
	Archive *Archival
	// Err says why a command was refused (ErrKillSwitchOn, ErrInvalidCommand,
	// ErrOverrideRenewalLimit) or why it changed nothing (ErrNoChange,
	// ErrNotOpen, ErrModeNotAuto, ErrRecoveryNotDue, ErrNotStuck), why a
	// report was refused (ErrInvalidReport), or ErrUnknownInput.
	Err error
}

// Archival describes a breaker an archive command removed: what the
// breaker-worker publishes as its archived event.
type Archival struct {
	// Service is the breaker's name: "<svc>--<cell>" for trigger
	// cell_unmapped, any breaker name for trigger idle.
	Service string `json:"service"`
	// Cell is the cell part of a cell-scoped name, "" for another name.
	Cell string `json:"cell"`
	// State and Mode are the breaker's last state and mode.
	State State `json:"state"`
	Mode  Mode  `json:"mode"`
	// Generation is the breaker's last generation, unchanged by archiving.
	Generation uint64 `json:"generation"`
	// Trigger is the command's trigger, cell_unmapped or idle.
	Trigger Trigger `json:"trigger"`
	// Actor and Reason are the command's.
	Actor  string `json:"actor"`
	Reason string `json:"reason"`
	// At is when the archive command was folded.
	At time.Time `json:"at"`
	// Window is the window's totals when it was archived.
	Window WindowStats `json:"window"`
}

// NewBreaker returns the breaker of a service that has none yet: closed, auto,
// generation 0.
func NewBreaker(service string) Breaker {
	return Breaker{Service: service, State: StateClosed, Mode: ModeAuto}
}

// Apply folds one input into b at env.Now under env.Config and returns the new
// breaker and what happened. It is pure: no I/O, no clock, b is not modified.
// The window is aged to env.Now first, whatever the input.
func (b Breaker) Apply(in Input, env Env) (Breaker, Result) {
	return b.apply(in, env, false)
}

// apply is Apply; with owned, the window's buckets belong to b alone (see
// Fold) and are changed in place instead of copied.
func (b Breaker) apply(in Input, env Env, owned bool) (Breaker, Result) {
	if b.State == "" {
		b.State = StateClosed
	}
	if b.Mode == "" {
		b.Mode = ModeAuto
	}
	f := folder{b: b, now: env.Now, env: env, cfg: env.Config.Effective(b.Override, env.Now), owned: owned}
	f.b.Window, f.res.Changed = f.b.Window.age(env.Now, f.cfg.Window.D())
	switch in.Kind {
	case InputReport:
		f.report(in.Report)
	case InputCommand:
		f.command(in.Command)
	case InputPermit:
		f.permit()
	case InputTick:
		f.tick()
	default:
		f.res.Err = fmt.Errorf("%w: %d", ErrUnknownInput, in.Kind)
	}
	return f.b, f.res
}

// folder is the state of one Apply.
type folder struct {
	b   Breaker
	now time.Time
	env Env
	cfg Config // effective config
	res Result
	// owned says the window's buckets may be changed in place (Fold).
	owned bool
}

// transition moves the breaker to state and mode, raising the generation by one
// and recording the transition.
func (f *folder) transition(to State, mode Mode, trigger Trigger, actor, reason string, replay bool) {
	b := &f.b
	from, fromMode := b.State, b.Mode
	b.State, b.Mode = to, mode
	b.Generation++
	b.LastTransition = &LastTransition{From: from, To: to, Trigger: trigger, At: f.now}
	f.res.Transitions = append(f.res.Transitions, Transition{
		Service:       b.Service,
		From:          from,
		To:            to,
		FromMode:      fromMode,
		Mode:          mode,
		Trigger:       trigger,
		TriggerReplay: replay,
		Generation:    b.Generation,
		Actor:         actor,
		Reason:        reason,
		At:            f.now,
		Window:        b.Window.WindowStats,
	})
	f.res.Changed = true
}

// open moves a breaker that is not open to OPEN.
func (f *folder) open(mode Mode, trigger Trigger, actor, reason string) {
	f.transition(StateOpen, mode, trigger, actor, reason, false)
	f.b.OpenedAt = f.now
	f.b.RecoveryAt = f.now.Add(f.cfg.RecoveryTimeout.D())
	f.b.HalfOpen = HalfOpen{}
}

// reopen moves a HALF_OPEN breaker back to OPEN after a probe failed, with the
// recovery timeout backed off.
func (f *folder) reopen() {
	f.b.Reopens++
	f.transition(StateOpen, f.b.Mode, TriggerHalfOpenFailure, "", "", false)
	f.b.OpenedAt = f.now
	f.b.RecoveryAt = f.now.Add(recoveryDelay(f.cfg, f.b.Service, f.b.Generation, f.b.Reopens))
	f.b.HalfOpen = HalfOpen{}
}

// close moves the breaker to CLOSED and starts afresh: empty window, no
// consecutive failures, no re-opens.
func (f *folder) close(mode Mode, trigger Trigger, actor, reason string, replay bool) {
	f.transition(StateClosed, mode, trigger, actor, reason, replay)
	b := &f.b
	b.Window = Window{}
	b.ConsecutiveFailures = 0
	b.Reopens = 0
	b.HalfOpen = HalfOpen{}
	b.OpenedAt = time.Time{}
	b.RecoveryAt = time.Time{}
}

// halfOpen starts a half-open period with issued permits already granted, in
// mode auto. A stuck-window reset keeps the probe successes already reported.
func (f *folder) halfOpen(trigger Trigger, issued int) {
	successes := int64(0)
	if f.b.State == StateHalfOpen {
		successes = f.b.HalfOpen.Successes
	}
	f.transition(StateHalfOpen, ModeAuto, trigger, "", "", false)
	f.b.HalfOpen = HalfOpen{Permits: f.cfg.HalfOpenMaxCalls, Issued: issued, Successes: successes, StartedAt: f.now}
}

// stuck reports whether the half-open window is full and older than
// half_open_stuck_timeout.
func (f *folder) stuck() bool {
	h := f.b.HalfOpen
	return h.Issued >= h.Permits && !f.now.Before(h.StartedAt.Add(f.cfg.HalfOpenStuckTimeout.D()))
}

// report folds an outcome report.
func (f *folder) report(r Report) {
	b := &f.b
	if r.Seq != 0 && r.Seq <= b.LastSeq {
		f.res.Ignored = true
		return
	}
	if err := checkReport(r); err != nil {
		f.res.Err = err
		return
	}
	if r.Seq != 0 {
		b.LastSeq = r.Seq
	}
	b.ActiveAt = f.now
	f.res.Changed = true
	if f.owned {
		b.Window.addOwned(f.now, f.cfg.Window.D(), r)
	} else {
		b.Window = b.Window.add(f.now, f.cfg.Window.D(), r)
	}
	if r.Successes > 0 {
		b.ConsecutiveFailures = r.TrailingFailures
	} else {
		b.ConsecutiveFailures += r.Failures
	}
	if b.Mode != ModeAuto {
		return // forced, disabled and metrics_only count but never change state
	}
	switch b.State {
	case StateClosed:
		if f.shouldTrip() {
			f.open(ModeAuto, TriggerAuto, "", "")
		}
	case StateHalfOpen:
		if r.Failures > 0 {
			f.reopen()
			return
		}
		b.HalfOpen.Successes += r.Successes
		if b.HalfOpen.Successes >= int64(f.cfg.SuccessThreshold) {
			f.close(ModeAuto, TriggerAuto, "", "", true)
		}
	}
}

// checkReport refuses reports no node can have produced.
func checkReport(r Report) error {
	switch {
	case r.Successes < 0 || r.Failures < 0 || r.SlowCalls < 0 || r.TrailingFailures < 0:
		return fmt.Errorf("%w: negative count (successes %d, failures %d, slow_calls %d, trailing_failures %d)",
			ErrInvalidReport, r.Successes, r.Failures, r.SlowCalls, r.TrailingFailures)
	case r.TrailingFailures > r.Failures:
		return fmt.Errorf("%w: trailing_failures %d exceeds failures %d", ErrInvalidReport, r.TrailingFailures, r.Failures)
	case r.SlowCalls > r.Calls():
		return fmt.Errorf("%w: slow_calls %d exceeds calls %d", ErrInvalidReport, r.SlowCalls, r.Calls())
	}
	return nil
}

// shouldTrip applies the CLOSED → OPEN rule to the window.
func (f *folder) shouldTrip() bool {
	s, c := f.b.Window.WindowStats, f.cfg
	if s.Calls() < int64(c.MinimumCalls) || s.FailingNodes < c.MinFailingNodes {
		return false
	}
	return s.FailureRate >= c.FailureRateThreshold ||
		(c.SlowCallRateThreshold > 0 && s.SlowCallRate >= c.SlowCallRateThreshold) ||
		f.b.ConsecutiveFailures >= int64(c.FailureThreshold)
}

// permit answers a half-open permit request.
func (f *folder) permit() {
	b := &f.b
	switch b.Mode {
	case ModeDisabled, ModeMetricsOnly, ModeForcedClosed:
		f.res.Granted = true
		return
	case ModeForcedOpen:
		return
	}
	switch b.State {
	case StateClosed:
		f.res.Granted = true
	case StateOpen:
		if f.now.Before(b.RecoveryAt) {
			return
		}
		f.halfOpen(TriggerRecoveryTimeout, 1)
		f.res.Granted = true
	case StateHalfOpen:
		switch {
		case b.HalfOpen.Issued < b.HalfOpen.Permits:
			b.HalfOpen.Issued++
			f.res.Changed = true
			f.res.Granted = true
		case f.stuck():
			f.halfOpen(TriggerStuckHalfOpen, 1)
			f.res.Granted = true
		}
	}
}

// tick expires a forced mode and an override whose time has come.
func (f *folder) tick() {
	_ = f.expireManual()
	_ = f.expireOverride()
}

// expireManual ends a forced mode whose expiry has passed: the breaker moves
// to HALF_OPEN in mode auto (trigger manual_expired). The error says why
// there was nothing to expire (ErrNoChange).
func (f *folder) expireManual() error {
	b := &f.b
	if (b.Mode != ModeForcedOpen && b.Mode != ModeForcedClosed) || b.Manual == nil || b.Manual.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: mode %s has no expiry", ErrNoChange, b.Mode)
	}
	if f.now.Before(b.Manual.ExpiresAt) {
		return fmt.Errorf("%w: mode %s expires at %s", ErrNoChange, b.Mode, b.Manual.ExpiresAt.Format(time.RFC3339))
	}
	b.Manual = nil
	f.halfOpen(TriggerManualExpired, 0)
	return nil
}

// expireOverride removes a threshold override whose expiry has passed, state
// and mode unchanged (trigger override_expired). The error says why there was
// nothing to remove (ErrNoChange).
func (f *folder) expireOverride() error {
	b := &f.b
	if b.Override == nil {
		return fmt.Errorf("%w: no override", ErrNoChange)
	}
	if b.Override.Active(f.now) {
		return fmt.Errorf("%w: override expires at %s", ErrNoChange, b.Override.ExpiresAt.Format(time.RFC3339))
	}
	b.Override = nil
	f.transition(b.State, b.Mode, TriggerOverrideExpired, "", "", false)
	return nil
}

// command applies a breaker command.
func (f *folder) command(c Command) {
	b := &f.b
	if !c.Action.Valid() {
		f.res.Err = fmt.Errorf("%w: unknown action %q", ErrInvalidCommand, c.Action)
		return
	}
	if c.ID != "" && c.ID == b.LastCommandID {
		f.res.Ignored = true
		return
	}
	if c.Expired(f.env.Now) {
		f.res.Err = fmt.Errorf("%w: %s by %s was valid until %s and reached the breaker at %s: not applied",
			ErrCommandExpired, c.Action, c.Actor, c.ValidUntil.UTC().Format(time.RFC3339Nano), f.env.Now.UTC().Format(time.RFC3339Nano))
		return
	}
	if c.Action.Manual() {
		if c.Actor == "" || c.Reason == "" {
			f.res.Err = fmt.Errorf("%w: %s needs an actor and a reason", ErrInvalidCommand, c.Action)
			return
		}
		if d := f.env.Governance.CheckManualControl(c.OverrideKillSwitch); !d.Allowed {
			f.res.Err = fmt.Errorf("%s by %s refused: %w", c.Action, c.Actor, d.Err())
			return
		}
	}
	var err error
	switch c.Action {
	case ActionOpen:
		f.forceOpen(c)
	case ActionClose:
		f.forceClose(c)
	case ActionAuto, ActionDisable, ActionMetricsOnly:
		err = f.setMode(c)
	case ActionHalfOpen:
		err = f.halfOpenCommand(c)
	case ActionOverride:
		err = f.override(c)
	case ActionArchive:
		err = f.archive(c)
	case ActionClearOverride:
		if b.Override == nil {
			err = fmt.Errorf("%w: no override to clear", ErrNoChange)
			break
		}
		b.Override = nil
		f.transition(b.State, b.Mode, TriggerManual, c.Actor, c.Reason, false)
	}
	if err != nil {
		f.res.Err = err
		return
	}
	f.res.Applied = true
	f.res.Changed = true
	f.res.KillSwitchOverridden = c.Action.Manual() && f.env.Governance.KillSwitch.Active
	if f.res.KillSwitchOverridden {
		for i := range f.res.Transitions {
			f.res.Transitions[i].KillSwitchOverride = true
		}
	}
	if c.ID != "" {
		b.LastCommandID = c.ID
	}
	if c.Action != ActionArchive {
		b.ActiveAt = f.now
	}
}

// archive applies `archive`. With trigger cell_unmapped the breaker must be
// cell-scoped ("<svc>--<cell>", CellBreakerName); with trigger idle it may
// have any name, the command's ttl is the idle period, and a breaker that is
// not idle for it at now (CheckIdle: a report or command folded since, a
// state other than CLOSED in mode auto, a manual or override record) is left
// alone as a no-op (ErrNoChange). Either needs an actor and a reason.
// Nothing about the breaker changes — no transition, no new generation
// (seed: archiving is not a transition); the result asks the worker to
// delete it.
func (f *folder) archive(c Command) error {
	b := &f.b
	if c.Actor == "" || c.Reason == "" {
		return fmt.Errorf("%w: archive needs an actor and a reason", ErrInvalidCommand)
	}
	_, cell, ok := ParseCellBreakerName(b.Service)
	switch c.Trigger {
	case TriggerCellUnmapped:
		if !ok {
			return fmt.Errorf("%w: %q is not a cell-scoped breaker (<svc>%s<cell>); only those are archived as %s",
				ErrInvalidCommand, b.Service, CellSeparator, TriggerCellUnmapped)
		}
	case TriggerIdle:
		if c.TTL <= 0 {
			return fmt.Errorf("%w: archive with trigger %s needs a ttl: the idle period", ErrInvalidCommand, TriggerIdle)
		}
		if err := b.CheckIdle(f.now, c.TTL.D()); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: archive with trigger %q, want %s or %s", ErrInvalidCommand, c.Trigger, TriggerCellUnmapped, TriggerIdle)
	}
	f.res.Archive = &Archival{Service: b.Service, Cell: cell, State: b.State, Mode: b.Mode,
		Generation: b.Generation, Trigger: c.Trigger, Actor: c.Actor, Reason: c.Reason,
		At: f.now, Window: b.Window.WindowStats}
	return nil
}

// manualTTL is the ttl of a manual open or close: the command's, else
// manual_override_ttl.
func (f *folder) manualTTL(c Command) time.Duration {
	if c.TTL > 0 {
		return c.TTL.D()
	}
	return f.cfg.ManualOverrideTTL.D()
}

// forceOpen applies `open`: forced_open until now + ttl.
func (f *folder) forceOpen(c Command) {
	b := &f.b
	if b.State == StateOpen {
		f.transition(StateOpen, ModeForcedOpen, TriggerManual, c.Actor, c.Reason, false)
	} else {
		f.open(ModeForcedOpen, TriggerManual, c.Actor, c.Reason)
	}
	b.Manual = &Manual{Actor: c.Actor, Reason: c.Reason, ExpiresAt: f.now.Add(f.manualTTL(c))}
}

// forceClose applies `close`: forced_closed until now + ttl, passing
// trigger_replay to the transition.
func (f *folder) forceClose(c Command) {
	b := &f.b
	if b.State == StateClosed {
		f.transition(StateClosed, ModeForcedClosed, TriggerManual, c.Actor, c.Reason, c.TriggerReplay)
	} else {
		f.close(ModeForcedClosed, TriggerManual, c.Actor, c.Reason, c.TriggerReplay)
	}
	b.Manual = &Manual{Actor: c.Actor, Reason: c.Reason, ExpiresAt: f.now.Add(f.manualTTL(c))}
}

// setMode applies auto, disable and metrics_only: the mode changes, the state
// stays.
func (f *folder) setMode(c Command) error {
	b := &f.b
	mode := ModeAuto
	switch c.Action {
	case ActionDisable:
		mode = ModeDisabled
	case ActionMetricsOnly:
		mode = ModeMetricsOnly
	}
	if b.Mode == mode {
		return fmt.Errorf("%w: mode is already %s", ErrNoChange, mode)
	}
	f.transition(b.State, mode, TriggerManual, c.Actor, c.Reason, false)
	if mode == ModeAuto {
		b.Manual = nil
	} else {
		b.Manual = &Manual{Actor: c.Actor, Reason: c.Reason}
	}
	return nil
}

// halfOpenCommand applies the watchdog's half_open command. Its trigger names
// the deadline that passed: recovery_timeout (or none) moves an OPEN auto
// breaker past recovery_at to HALF_OPEN; stuck_half_open restarts a full
// half-open window older than half_open_stuck_timeout; manual_expired ends a
// forced mode past its expiry (to HALF_OPEN, mode auto); override_expired
// removes an expired threshold override. A deadline that has not passed, or
// was already handled, changes nothing (ErrNotOpen, ErrModeNotAuto,
// ErrRecoveryNotDue, ErrNotStuck, ErrNoChange).
func (f *folder) halfOpenCommand(c Command) error {
	b := &f.b
	switch c.Trigger {
	case TriggerManualExpired:
		return f.expireManual()
	case TriggerOverrideExpired:
		return f.expireOverride()
	case TriggerStuckHalfOpen, TriggerRecoveryTimeout, "":
	default:
		return fmt.Errorf("%w: half_open with trigger %q, want recovery_timeout, stuck_half_open, manual_expired or override_expired",
			ErrInvalidCommand, c.Trigger)
	}
	if b.Mode != ModeAuto {
		return fmt.Errorf("%w: mode is %s", ErrModeNotAuto, b.Mode)
	}
	if c.Trigger == TriggerStuckHalfOpen {
		if b.State != StateHalfOpen {
			return fmt.Errorf("%w: state is %s", ErrNotStuck, b.State)
		}
		if !f.stuck() {
			return fmt.Errorf("%w: %d of %d permits issued since %s", ErrNotStuck,
				b.HalfOpen.Issued, b.HalfOpen.Permits, b.HalfOpen.StartedAt.Format(time.RFC3339))
		}
		f.halfOpen(TriggerStuckHalfOpen, 0)
		return nil
	}
	if b.State != StateOpen {
		return fmt.Errorf("%w: state is %s", ErrNotOpen, b.State)
	}
	if f.now.Before(b.RecoveryAt) {
		return fmt.Errorf("%w: recovery_at is %s", ErrRecoveryNotDue, b.RecoveryAt.Format(time.RFC3339))
	}
	f.halfOpen(TriggerRecoveryTimeout, 0)
	return nil
}

// override applies `override`: the command's fields (or the seed's defaults,
// ×2 failure_threshold and ×3 recovery_timeout of the base config) until
// now + ttl (default OverrideDefaultTTL). Replacing an active override is a
// renewal, at most MaxOverrideRenewals times.
func (f *folder) override(c Command) error {
	b := &f.b
	t := ThresholdOverride{}
	if c.Override != nil {
		t = cloneThresholdOverride(*c.Override)
	}
	if t == (ThresholdOverride{}) {
		t = f.env.Config.DefaultThresholdOverride()
	}
	if err := f.env.Config.with(t).Validate(); err != nil {
		return fmt.Errorf("%w: override makes the config invalid: %w", ErrInvalidCommand, err)
	}
	renewals := 0
	if b.Override.Active(f.now) {
		renewals = b.Override.Renewals + 1
		if renewals > MaxOverrideRenewals {
			return fmt.Errorf("%w: renewed %d times already, at most %d", ErrOverrideRenewalLimit,
				b.Override.Renewals, MaxOverrideRenewals)
		}
	}
	ttl := OverrideDefaultTTL
	if c.TTL > 0 {
		ttl = c.TTL.D()
	}
	b.Override = &Override{ThresholdOverride: t, Actor: c.Actor, Reason: c.Reason,
		ExpiresAt: f.now.Add(ttl), Renewals: renewals}
	f.transition(b.State, b.Mode, TriggerManual, c.Actor, c.Reason, false)
	return nil
}

// cloneThresholdOverride copies t so the breaker shares no pointer with the
// command it was built from.
func cloneThresholdOverride(t ThresholdOverride) ThresholdOverride {
	return ThresholdOverride{
		FailureThreshold:      clonePtr(t.FailureThreshold),
		FailureRateThreshold:  clonePtr(t.FailureRateThreshold),
		MinimumCalls:          clonePtr(t.MinimumCalls),
		SlowCallRateThreshold: clonePtr(t.SlowCallRateThreshold),
		RecoveryTimeout:       clonePtr(t.RecoveryTimeout),
	}
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// recoveryDelay is how long a breaker stays OPEN after its reopens-th re-open
// from HALF_OPEN (0 for a trip from CLOSED): recovery_timeout ×
// recovery_backoff^reopens, capped at max_recovery_timeout (never below
// recovery_timeout), and for re-opens, when recovery_jitter > 0, shortened by
// up to that fraction, by an amount derived from the service and generation so
// the fold stays pure and replicas agree.
func recoveryDelay(c Config, service string, generation uint64, reopens int) time.Duration {
	base := c.RecoveryTimeout.D()
	if reopens <= 0 {
		return base
	}
	limit := max(c.MaxRecoveryTimeout.D(), base)
	d := limit
	if grown := float64(base) * math.Pow(c.RecoveryBackoff, float64(reopens)); grown < float64(limit) {
		d = time.Duration(grown)
	}
	if c.RecoveryJitter > 0 {
		d -= time.Duration(float64(d) * c.RecoveryJitter * recoveryUnit(service, generation))
	}
	return d
}

// recoveryUnit maps service and generation to a number in [0, 1) with FNV-1a.
func recoveryUnit(service string, generation uint64) float64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(service); i++ {
		h = (h ^ uint64(service[i])) * prime
	}
	for i := range 8 {
		h = (h ^ (generation >> (8 * i) & 0xff)) * prime
	}
	return float64(h>>11) / (1 << 53)
}

// Allows says whether a call may go at now, by Admit: closed, disabled,
// metrics_only and forced_closed allow; forced_open denies; open denies before
// recovery_at; open past recovery_at and half_open need a permit. A state this
// version does not know allows (fail open). It does not allocate.
func (b *Breaker) Allows(now time.Time) Decision {
	return Admit(b.State, b.Mode, b.RecoveryAt, now)
}

// Validate checks the invariants the fold keeps: a known state and mode, a
// forced mode that agrees with the state and names its operator, a half-open
// period that issued no more permits than it allows. Errors wrap
// ErrInvalidBreaker.
func (b *Breaker) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidBreaker}, args...)...))
	}
	if !slices.Contains([]State{StateClosed, StateOpen, StateHalfOpen}, b.State) {
		bad("unknown state %q", b.State)
	}
	if !slices.Contains([]Mode{ModeAuto, ModeForcedOpen, ModeForcedClosed, ModeDisabled, ModeMetricsOnly}, b.Mode) {
		bad("unknown mode %q", b.Mode)
	}
	if b.Mode == ModeForcedOpen && b.State != StateOpen {
		bad("mode forced_open with state %s", b.State)
	}
	if b.Mode == ModeForcedClosed && b.State != StateClosed {
		bad("mode forced_closed with state %s", b.State)
	}
	if (b.Mode == ModeForcedOpen || b.Mode == ModeForcedClosed) && (b.Manual == nil || b.Manual.ExpiresAt.IsZero()) {
		bad("mode %s without manual actor and expiry", b.Mode)
	}
	if b.Mode == ModeAuto && b.Manual != nil {
		bad("mode auto with a manual record")
	}
	if b.HalfOpen.Issued < 0 || b.HalfOpen.Issued > b.HalfOpen.Permits {
		bad("half_open issued %d of %d permits", b.HalfOpen.Issued, b.HalfOpen.Permits)
	}
	if b.State == StateOpen && b.RecoveryAt.IsZero() {
		bad("open without recovery_at")
	}
	if b.ConsecutiveFailures < 0 || b.Reopens < 0 {
		bad("negative consecutive_failures %d or reopens %d", b.ConsecutiveFailures, b.Reopens)
	}
	if len(b.Window.Buckets) > WindowBuckets {
		bad("%d window buckets, at most %d", len(b.Window.Buckets), WindowBuckets)
	}
	return errors.Join(errs...)
}

// AggregateFailureRate is the fleet-wide failure fraction (0–1, the seed's
// get_aggregate_failure_rate): the sum of the breakers' window failures over
// the sum of their window calls, 0 when there is no call.
func AggregateFailureRate(breakers []Breaker) float64 {
	var failures, calls int64
	for i := range breakers {
		failures += breakers[i].Window.Failures
		calls += breakers[i].Window.Calls()
	}
	if calls == 0 {
		return 0
	}
	return float64(failures) / float64(calls)
}
