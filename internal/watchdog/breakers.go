package watchdog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
)

// Names of the built-in duties.
const (
	DutyRecoveryTimeout = "recovery_timeout"
	DutyManualExpired   = "manual_expired"
	DutyOverrideExpired = "override_expired"
	DutyStuckHalfOpen   = "stuck_half_open"
	DutyArchiveIdle     = "archive_idle"
	DutyRescue          = "rescue_replays"
	DutySLA             = "sla_breaches"
	DutyExpire          = "expire_entries"
	DutyPurge           = "purge_terminal"
	DutyPruneRollups    = "prune_rollups"
)

func (w *Watchdog) builtinDuties() []Duty {
	duties := []Duty{
		w.deadlineDuty(domain.TriggerRecoveryTimeout, func(_ string, d *deadlines, now time.Time) bool {
			return d.State == domain.StateOpen && d.Mode == domain.ModeAuto && !d.RecoveryAt.IsZero() && !now.Before(d.RecoveryAt)
		}),
		w.deadlineDuty(domain.TriggerManualExpired, func(_ string, d *deadlines, now time.Time) bool {
			at := d.manualExpires()
			return !at.IsZero() && !now.Before(at)
		}),
		w.deadlineDuty(domain.TriggerOverrideExpired, func(_ string, d *deadlines, now time.Time) bool {
			at := d.overrideExpires()
			return !at.IsZero() && !now.Before(at)
		}),
		w.deadlineDuty(domain.TriggerStuckHalfOpen, func(svc string, d *deadlines, now time.Time) bool {
			h := d.HalfOpen
			if d.State != domain.StateHalfOpen || d.Mode != domain.ModeAuto || h.Permits == 0 || h.Issued < h.Permits {
				return false
			}
			return !now.Before(h.StartedAt.Add(w.deps.Configs.Config(svc).HalfOpenStuckTimeout.D()))
		}),
		DutyFunc{DutyName: DutyRescue, Fn: w.rescue},
		DutyFunc{DutyName: DutySLA, Fn: w.flagSLA},
		DutyFunc{DutyName: DutyExpire, Fn: w.expire},
		DutyFunc{DutyName: DutyPurge, Fn: w.purge},
		DutyFunc{DutyName: DutyPruneRollups, Fn: w.pruneRollups},
	}
	if w.cfg.IdleAfter > 0 {
		duties = append(duties, DutyFunc{DutyName: DutyArchiveIdle, Fn: w.archiveIdle})
	}
	return duties
}

// sentKey names a command sent for a breaker.
type sentKey struct {
	svc     string
	trigger domain.Trigger
}

// sentCommand is when a command was sent, and for which generation.
type sentCommand struct {
	gen uint64
	at  time.Time
}

// due is a breaker whose deadline passed.
type due struct {
	svc string
	gen uint64
}

// deadlineDuty returns the duty that sends a half_open command with trigger
// to every breaker for which isDue holds, once per breaker generation (again
// after ResendAfter when the breaker did not move).
func (w *Watchdog) deadlineDuty(trigger domain.Trigger, isDue func(svc string, d *deadlines, now time.Time) bool) Duty {
	return DutyFunc{DutyName: string(trigger), Fn: func(ctx context.Context, now time.Time) error {
		var list []due
		w.index.each(func(svc string, d *deadlines) {
			if isDue(svc, d, now) {
				list = append(list, due{svc, d.Generation})
			}
		})
		w.forget(trigger, list)
		var errs []error
		for _, b := range list {
			if !w.shouldSend(b, trigger, now) {
				w.stats.held.Add(1)
				continue
			}
			if err := w.sendHalfOpen(ctx, b.svc, trigger, now); err != nil {
				errs = append(errs, err)
				continue
			}
			w.remember(b, trigger, now)
			w.stats.command(string(trigger))
			w.log.InfoContext(ctx, "breaker command sent", slog.String("service", b.svc),
				slog.String("trigger", string(trigger)), slog.Uint64("generation", b.gen))
		}
		return errors.Join(errs...)
	}}
}

// forget drops the memory of trigger's commands to breakers that are no
// longer due (they moved on, or were deleted).
func (w *Watchdog) forget(trigger domain.Trigger, list []due) {
	keep := make(map[string]uint64, len(list))
	for _, b := range list {
		keep[b.svc] = b.gen
	}
	w.sentMu.Lock()
	defer w.sentMu.Unlock()
	for k, s := range w.sent {
		if k.trigger != trigger {
			continue
		}
		if gen, ok := keep[k.svc]; !ok || gen != s.gen {
			delete(w.sent, k)
		}
	}
}

func (w *Watchdog) shouldSend(b due, trigger domain.Trigger, now time.Time) bool {
	w.sentMu.Lock()
	defer w.sentMu.Unlock()
	s, ok := w.sent[sentKey{b.svc, trigger}]
	return !ok || s.gen != b.gen || now.Sub(s.at) >= w.cfg.ResendAfter
}

func (w *Watchdog) remember(b due, trigger domain.Trigger, now time.Time) {
	w.sentMu.Lock()
	defer w.sentMu.Unlock()
	w.sent[sentKey{b.svc, trigger}] = sentCommand{gen: b.gen, at: now}
}

// sendHalfOpen publishes a half_open command with trigger to
// baldur.control.<svc>.
func (w *Watchdog) sendHalfOpen(ctx context.Context, svc string, trigger domain.Trigger, now time.Time) error {
	subject, err := events.ControlSubject(svc)
	if err != nil {
		return fmt.Errorf("%s command to %q: %w", trigger, svc, err)
	}
	env := events.NewEnvelope(events.TypeControl, uuid.New(), w.cfg.Node, now)
	msg, err := events.NewMsg(subject, env, events.BreakerCommand{Action: domain.ActionHalfOpen, Trigger: trigger})
	if err != nil {
		return fmt.Errorf("%s command to %s: %w", trigger, svc, err)
	}
	if _, err := w.deps.JS.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish %s command to %s: %w", trigger, svc, err)
	}
	return nil
}
