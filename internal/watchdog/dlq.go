package watchdog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/store"
)

// Audit actions of the watchdog's DLQ duties. Their subject is "dlq:<svc>" of
// the first entry concerned, or "dlq" for several services.
const (
	// AuditActionRescue records replaying entries put back to pending
	// because their replay lease expired.
	AuditActionRescue = "dlq.rescued"
	// AuditActionExpire records entries moved to expired past expires_at.
	AuditActionExpire = "dlq.expired"
	// AuditActionPurge records terminal entries deleted after the retention.
	AuditActionPurge = "dlq.purged"
)

// maxAuditIDs bounds the entry ids listed in one audit record.
const maxAuditIDs = 100

// slaEventNamespace derives an sla_breached event's ce-id from its entry id,
// so that a re-publish is dropped by the stream's duplicate window.
var slaEventNamespace = uuid.MustParse("3d0f9a52-8c47-4b7e-a1d6-5e2c9b8f4a30")

// actor is the watchdog's audit actor.
func (w *Watchdog) actor() string { return "watchdog:" + w.cfg.Node }

// rescue puts back to pending the replaying entries whose replay lease
// expired (store.RescueExpired), counted and audited.
func (w *Watchdog) rescue(ctx context.Context, now time.Time) error {
	refs, err := w.deps.Store.RescueExpired(ctx, now)
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		return nil
	}
	w.stats.rescued.Add(int64(len(refs)))
	w.log.InfoContext(ctx, "replays rescued after their lease expired", slog.Int("entries", len(refs)))
	return w.audit(ctx, now, AuditActionRescue, "replay lease expired with entries still replaying", refs, 0)
}

// expire moves entries past expires_at to expired, in batches of cfg.Batch,
// at most cfg.MaxBatches per tick; counted and audited.
func (w *Watchdog) expire(ctx context.Context, now time.Time) error {
	for range w.cfg.MaxBatches {
		refs, err := w.deps.Store.ExpireEntries(ctx, now, w.cfg.Batch)
		if err != nil {
			return err
		}
		if len(refs) > 0 {
			w.stats.expired.Add(int64(len(refs)))
			if err := w.audit(ctx, now, AuditActionExpire, "past expires_at", refs, 0); err != nil {
				return err
			}
		}
		if len(refs) < w.cfg.Batch {
			return nil
		}
	}
	return nil
}

// purge deletes terminal entries whose expires_at is more than the retention
// ago, in batches of cfg.Batch, at most cfg.MaxBatches per tick; counted and
// audited once per tick.
func (w *Watchdog) purge(ctx context.Context, now time.Time) error {
	var total int64
	var err error
	for range w.cfg.MaxBatches {
		var n int64
		n, err = w.deps.Store.DeleteTerminal(ctx, now.Add(-w.cfg.Retention), w.cfg.Batch)
		total += n
		if err != nil || n < int64(w.cfg.Batch) {
			break
		}
	}
	if total == 0 {
		return err
	}
	w.stats.purged.Add(total)
	w.log.InfoContext(ctx, "terminal entries purged", slog.Int64("entries", total))
	reason := fmt.Sprintf("terminal for longer than the retention (%s after expires_at)", w.cfg.Retention)
	return errors.Join(err, w.audit(ctx, now, AuditActionPurge, reason, nil, total))
}

// pruneRollups deletes the outcome rollups older than the rollup retention,
// at most once every RollupPruneEvery.
func (w *Watchdog) pruneRollups(ctx context.Context, now time.Time) error {
	if last := w.lastPrune.Load(); last != 0 && now.Sub(time.Unix(0, last)) < RollupPruneEvery {
		return nil
	}
	n, err := w.deps.Store.PruneRollups(ctx, now.Add(-w.cfg.RollupRetention))
	if err != nil {
		return err
	}
	w.lastPrune.Store(now.UnixNano())
	w.stats.rollupsPruned.Add(n)
	if n > 0 {
		w.log.InfoContext(ctx, "outcome rollups pruned", slog.Int64("rows", n), slog.Duration("retention", w.cfg.RollupRetention))
	}
	return nil
}

// audit appends one record for a duty's action on refs (or on n entries).
func (w *Watchdog) audit(ctx context.Context, now time.Time, action, reason string, refs []store.EntryRef, n int64) error {
	type detail struct {
		Count    int64    `json:"count"`
		Entries  []string `json:"entries,omitempty"`
		Services []string `json:"services,omitempty"`
	}
	d := detail{Count: n}
	subject := "dlq"
	seen := map[string]bool{}
	if len(refs) > 0 {
		d.Count = int64(len(refs))
		for i, r := range refs {
			if i < maxAuditIDs {
				d.Entries = append(d.Entries, r.ID)
			}
			if !seen[r.Service] {
				seen[r.Service] = true
				d.Services = append(d.Services, r.Service)
			}
		}
		if len(d.Services) == 1 {
			subject = "dlq:" + d.Services[0]
		}
	}
	details, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if _, err := w.deps.Store.AppendAudit(ctx, domain.AuditRecord{At: now, Actor: w.actor(), Action: action,
		Subject: subject, Reason: reason, Details: details}); err != nil {
		w.stats.eventsFailed.Add(1)
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// slaSettings reads the live SLA settings from baldur_config key "_sla": the
// defaults when the key is absent, and when its value is invalid (counted
// and logged; the value is not used).
func (w *Watchdog) slaSettings(ctx context.Context) (domain.SLASettings, error) {
	e, err := w.deps.Topology.ConfigKV.Get(ctx, domain.SLAConfigKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return domain.DefaultSLASettings(), nil
	}
	if err != nil {
		return domain.SLASettings{}, fmt.Errorf("read %s: %w", domain.SLAConfigKey, err)
	}
	s, err := domain.ParseSLASettings(e.Value())
	if err != nil {
		w.stats.slaInvalid.Add(1)
		w.log.WarnContext(ctx, "invalid SLA settings ignored; using the defaults",
			slog.String("key", domain.SLAConfigKey), slog.Uint64("revision", e.Revision()), slog.Any("error", err))
		return domain.DefaultSLASettings(), nil
	}
	return s, nil
}

// flagSLA flags, once, the pending entries past their domain's SLA
// (store.MarkSLABreached) and publishes baldur.event.dlq.<svc>.sla_breached
// for each; counted.
func (w *Watchdog) flagSLA(ctx context.Context, now time.Time) error {
	s, err := w.slaSettings(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range domain.FailureDomains {
		refs, err := w.deps.Store.MarkSLABreached(ctx, d, s.BreachedBefore(d, now), now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		w.stats.slaBreached.Add(int64(len(refs)))
		for _, r := range refs {
			ev := events.SLABreachedEvent{Service: r.Service, EntryID: r.ID, Domain: d, SLAHours: s.Hours(d), At: now}
			if err := w.publishSLA(ctx, ev); err != nil {
				// The entry is flagged; its event is lost. Counted and
				// reported, not retried for ever.
				w.stats.eventsFailed.Add(1)
				errs = append(errs, err)
			}
		}
		if len(refs) > 0 {
			w.log.InfoContext(ctx, "entries past their SLA flagged", slog.String("domain", string(d)),
				slog.Int("entries", len(refs)), slog.Int("sla_hours", s.Hours(d)))
		}
	}
	return errors.Join(errs...)
}

func (w *Watchdog) publishSLA(ctx context.Context, ev events.SLABreachedEvent) error {
	subject, err := events.DLQEventSubject(ev.Service, events.DLQSLABreached)
	if err != nil {
		return fmt.Errorf("sla_breached event of %s: %w", ev.EntryID, err)
	}
	id := uuid.NewSHA1(slaEventNamespace, []byte(ev.EntryID))
	msg, err := events.NewMsg(subject, events.NewEnvelope(events.TypeDLQSLABreached, id, w.cfg.Node, ev.At), ev)
	if err != nil {
		return fmt.Errorf("sla_breached event of %s: %w", ev.EntryID, err)
	}
	if _, err := w.deps.JS.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish sla_breached event of %s: %w", ev.EntryID, err)
	}
	return nil
}
