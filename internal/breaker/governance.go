package breaker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
)

// governanceVisibleWithin bounds how long the worker waits, after writing a
// governance key, for its GovernanceSource to show the new value, so that
// the commands after it are checked against it.
const governanceVisibleWithin = 2 * time.Second

// applyGovernance applies a governance command to its key of
// baldur_governance by compare-and-set and publishes
// baldur.event.governance.<key>. A command that would not change the key
// (the kill switch is already on, the level already set) changes nothing and
// publishes nothing.
func (w *Worker) applyGovernance(ctx context.Context, cmd events.GovernanceCommand, id string, seq uint64) error {
	kv := w.cfg.Topology.Governance
	now := w.cfg.Clock()
	if cmd.Expired(now) {
		return w.refuseExpiredGovernance(ctx, cmd, id, seq, now)
	}
	var key events.GovernanceKey
	switch cmd.Action {
	case events.ActionKillSwitchOn, events.ActionKillSwitchOff:
		key = events.GovernanceKillSwitch
	case events.ActionSetEmergencyLevel:
		key = events.GovernanceEmergencyLevel
	case events.ActionSetSLOTarget:
		key = events.GovernanceErrorBudget
	default:
		return fmt.Errorf("unknown governance action %q", cmd.Action)
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	for range maxCASAttempts {
		var old []byte
		var rev uint64
		e, err := kv.Get(ctx, string(key))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("read %s: %w", key, err)
		default:
			old, rev = e.Value(), e.Revision()
		}
		next, changed, err := governanceValue(cmd, old, now)
		if err != nil {
			return err
		}
		if !changed {
			w.stats.governanceNoops.Add(1)
			w.log.InfoContext(ctx, "governance command changes nothing", slog.String("action", string(cmd.Action)),
				slog.String("actor", cmd.Actor))
			return nil
		}
		if rev == 0 {
			_, err = kv.Create(ctx, string(key), next)
		} else {
			_, err = kv.Update(ctx, string(key), next, rev)
		}
		if isConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", key, err)
		}
		w.stats.governance.Add(1)
		w.log.WarnContext(ctx, "governance changed", slog.String("key", string(key)), slog.String("action", string(cmd.Action)),
			slog.String("actor", cmd.Actor), slog.String("reason", cmd.Reason))
		change := events.GovernanceChange{Key: key, Old: old, New: next, Actor: cmd.Actor, Reason: cmd.Reason, At: now}
		if err := w.publishGovernance(ctx, change, seq); err != nil {
			w.log.WarnContext(ctx, "governance event not published", slog.String("key", string(key)), slog.Any("error", err))
		}
		w.awaitGovernance(ctx, key, next)
		return nil
	}
	return fmt.Errorf("%w: governance key %s after %d attempts", ErrConflict, key, maxCASAttempts)
}

// governanceValue returns the key's new JSON value under cmd and whether it
// differs from old in substance (on/off, level, SLO target and window).
func governanceValue(cmd events.GovernanceCommand, old []byte, now time.Time) ([]byte, bool, error) {
	switch cmd.Action {
	case events.ActionSetSLOTarget:
		return errorBudgetValue(cmd, old, now)
	case events.ActionKillSwitchOn, events.ActionKillSwitchOff:
		var cur domain.KillSwitchState
		_ = json.Unmarshal(old, &cur) // an unreadable value is replaced
		on := cmd.Action == events.ActionKillSwitchOn
		if len(old) > 0 && json.Valid(old) && cur.Active == on {
			return nil, false, nil
		}
		v, err := json.Marshal(domain.KillSwitchState{Active: on, Actor: cmd.Actor, Reason: cmd.Reason, UpdatedAt: now})
		return v, true, err
	default:
		if cmd.Level == nil {
			return nil, false, fmt.Errorf("%w: set_emergency_level without a level", domain.ErrInvalidEmergencyLevel)
		}
		var cur domain.EmergencyState
		_ = json.Unmarshal(old, &cur)
		if len(old) > 0 && json.Valid(old) && cur.Level == *cmd.Level {
			return nil, false, nil
		}
		v, err := json.Marshal(domain.EmergencyState{Level: *cmd.Level, Actor: cmd.Actor, Reason: cmd.Reason, UpdatedAt: now})
		return v, true, err
	}
}

// errorBudgetValue applies set_slo_target to the error_budget key. A target
// of 0 turns the gate off (no change when it is off or was never set). A new target keeps the remaining budget the key
// holds (the watchdog recomputes it on its next tick); a gate turned on
// starts with the whole budget until then. The window is stored explicitly
// (domain.DefaultSLOWindow when the command names none).
func errorBudgetValue(cmd events.GovernanceCommand, old []byte, now time.Time) ([]byte, bool, error) {
	if cmd.SLOTarget == nil {
		return nil, false, fmt.Errorf("%w: set_slo_target without a target", domain.ErrInvalidSLOTarget)
	}
	var cur domain.ErrorBudget
	valid := len(old) > 0 && json.Unmarshal(old, &cur) == nil
	target := *cmd.SLOTarget
	if target == 0 {
		if len(old) == 0 || valid && !cur.Enabled {
			return nil, false, nil
		}
		v, err := json.Marshal(domain.ErrorBudget{Remaining: 1, UpdatedAt: now})
		return v, true, err
	}
	if err := domain.ValidateSLOTarget(target); err != nil {
		return nil, false, err
	}
	window := cmd.SLOWindow
	if window == 0 {
		window = domain.Duration(domain.DefaultSLOWindow)
	}
	if valid && cur.Enabled && cur.SLOTarget == target && cur.Window() == window.D() {
		return nil, false, nil
	}
	next := cur
	if !valid || !cur.Enabled {
		next = domain.ErrorBudget{Remaining: 1, Level: domain.ErrorBudgetOK}
	}
	next.Enabled, next.SLOTarget, next.SLOWindow, next.UpdatedAt = true, target, window, now
	v, err := json.Marshal(next)
	return v, true, err
}

func (w *Worker) publishGovernance(ctx context.Context, change events.GovernanceChange, seq uint64) error {
	subj, err := events.GovernanceEventSubject(change.Key)
	if err != nil {
		return err
	}
	msg, err := events.NewMsg(subj, events.NewEnvelope(events.TypeGovernanceChanged, derivedID("governance", seq), w.cfg.Node, change.At), change)
	if err != nil {
		return err
	}
	_, err = w.js.PublishMsg(ctx, msg)
	return err
}

// awaitGovernance waits until the GovernanceSource shows the value written to
// key, or governanceVisibleWithin passed.
func (w *Worker) awaitGovernance(ctx context.Context, key events.GovernanceKey, value []byte) {
	var want domain.Governance
	switch key {
	case events.GovernanceKillSwitch:
		_ = json.Unmarshal(value, &want.KillSwitch)
	case events.GovernanceEmergencyLevel:
		_ = json.Unmarshal(value, &want.Emergency)
	case events.GovernanceErrorBudget:
		_ = json.Unmarshal(value, &want.ErrorBudget)
	}
	deadline := time.Now().Add(governanceVisibleWithin)
	for time.Now().Before(deadline) {
		g := w.cfg.Governance.Governance()
		if key == events.GovernanceKillSwitch && g.KillSwitch.Active == want.KillSwitch.Active ||
			key == events.GovernanceEmergencyLevel && g.Emergency.Level == want.Emergency.Level ||
			key == events.GovernanceErrorBudget && g.ErrorBudget.Enabled == want.ErrorBudget.Enabled &&
				g.ErrorBudget.SLOTarget == want.ErrorBudget.SLOTarget && g.ErrorBudget.SLOWindow == want.ErrorBudget.SLOWindow {
			return
		}
		if !sleep(ctx, 2*time.Millisecond) {
			return
		}
	}
	w.log.WarnContext(ctx, "governance change not yet visible to this worker", slog.String("key", string(key)))
}

// refuseExpiredGovernance refuses a governance command that reached the
// worker after its valid_until: nothing changes, and a rejected event (kind
// governance, code command_expired) tells the operator's client, which has
// stopped waiting, and the audit trail.
func (w *Worker) refuseExpiredGovernance(ctx context.Context, cmd events.GovernanceCommand, id string, seq uint64, now time.Time) error {
	w.stats.refused.Add(1)
	err := fmt.Errorf("%w: %s by %s was valid until %s and reached the breaker-worker at %s: not applied",
		domain.ErrCommandExpired, cmd.Action, cmd.Actor, cmd.ValidUntil.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano))
	w.log.WarnContext(ctx, "governance command refused", slog.String("action", string(cmd.Action)),
		slog.String("actor", cmd.Actor), slog.String("code", CodeCommandExpired), slog.Any("error", err))
	rej := events.Rejected{
		Kind: events.RejectedGovernance, Code: CodeCommandExpired, Subject: events.SubjectGovernance,
		Reason: clipReason1k(err.Error()), CEID: id, CEType: string(events.TypeGovernance), At: now,
	}
	if err := w.publishRejected(ctx, rej, derivedID("refused", seq)); err != nil {
		w.log.WarnContext(ctx, "refusal event not published", slog.Any("error", err))
	}
	return nil
}
