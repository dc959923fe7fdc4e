package watchdog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
)

// idleBreaker is a breaker found idle, and since when.
type idleBreaker struct {
	due
	since time.Time
}

// archiveIdle is the duty archive_idle: for every breaker CLOSED in mode
// auto, with no manual or override record and no activity for
// Config.IdleAfter, it sends an archive command (trigger idle, ttl the idle
// period) to baldur.control.<svc>, the longest idle first and at most
// MaxIdleArchivesPerTick per tick, once per breaker generation (again after
// ResendAfter). The watchdog writes no breaker state: a breaker-worker
// checks the breaker again when it folds the command — one that became
// active since is left alone — deletes the key by compare-and-set and
// publishes baldur.event.breaker.<svc>.archived, which the audit consumer
// records.
func (w *Watchdog) archiveIdle(ctx context.Context, now time.Time) error {
	after := w.cfg.IdleAfter
	var list []idleBreaker
	w.index.each(func(svc string, d *deadlines) {
		if since, ok := d.idle(now, after); ok {
			list = append(list, idleBreaker{due{svc, d.Generation}, since})
		}
	})
	dues := make([]due, len(list))
	for i, b := range list {
		dues[i] = b.due
	}
	w.forget(domain.TriggerIdle, dues)
	if len(list) > MaxIdleArchivesPerTick {
		slices.SortFunc(list, func(a, b idleBreaker) int { return a.since.Compare(b.since) })
	}
	var (
		errs []error
		sent int
	)
	for i, b := range list {
		if sent == MaxIdleArchivesPerTick {
			w.log.InfoContext(ctx, "idle breakers left for the next tick", slog.Int("left", len(list)-i),
				slog.Int("per_tick", MaxIdleArchivesPerTick))
			break
		}
		if !w.shouldSend(b.due, domain.TriggerIdle, now) {
			w.stats.held.Add(1)
			continue
		}
		if err := w.sendArchiveIdle(ctx, b, after, now); err != nil {
			errs = append(errs, err)
			continue
		}
		sent++
		w.remember(b.due, domain.TriggerIdle, now)
		w.stats.command(string(domain.TriggerIdle))
		w.log.InfoContext(ctx, "archive command sent for an idle breaker", slog.String("service", b.svc),
			slog.Time("idle_since", b.since), slog.Duration("idle_after", after), slog.Uint64("generation", b.gen))
	}
	return errors.Join(errs...)
}

// sendArchiveIdle publishes the archive command of idle breaker b.
func (w *Watchdog) sendArchiveIdle(ctx context.Context, b idleBreaker, after time.Duration, now time.Time) error {
	subject, err := events.ControlSubject(b.svc)
	if err != nil {
		return fmt.Errorf("idle archive command to %q: %w", b.svc, err)
	}
	cmd := events.BreakerCommand{Action: domain.ActionArchive, Trigger: domain.TriggerIdle, TTL: domain.Duration(after),
		Actor: w.cfg.Node, Reason: fmt.Sprintf("no activity since %s (idle period %s)", b.since.UTC().Format(time.RFC3339), after)}
	msg, err := events.NewMsg(subject, events.NewEnvelope(events.TypeControl, uuid.New(), w.cfg.Node, now), cmd)
	if err != nil {
		return fmt.Errorf("idle archive command to %s: %w", b.svc, err)
	}
	if _, err := w.deps.JS.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish idle archive command to %s: %w", b.svc, err)
	}
	return nil
}
