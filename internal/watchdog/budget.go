package watchdog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/store"
)

// Defaults of BudgetConfig.
const (
	// DefaultBudgetMinDelta is the smallest change of the remaining budget
	// (a fraction of the budget) that is written without a level change.
	DefaultBudgetMinDelta = 0.001
	// DefaultBudgetRefresh is how old the stored counts may grow before
	// changed counts are written even when the remaining budget barely
	// moved, and how often the aggregate is rewritten while unchanged.
	DefaultBudgetRefresh = time.Minute
	// DefaultAggregateMinDelta is the smallest change of the aggregate
	// failure rate that is written before DefaultBudgetRefresh.
	DefaultAggregateMinDelta = 0.0005
)

// budgetCASAttempts bounds the compare-and-set retries of one run.
const budgetCASAttempts = 8

// budgetNamespace derives the ce-ids of error-budget level events from the
// KV revision that changed the level, so a re-published event is dropped by
// the events stream and recorded once by the audit log.
var budgetNamespace = uuid.MustParse("3d0f6a52-8c1e-4b7a-9e25-6a4c1f0d8b93")

// BudgetStore is what the error-budget duty needs of *store.Store.
type BudgetStore interface {
	SumRollups(ctx context.Context, since time.Time) (map[string]store.Outcomes, error)
	AppendAuditEvent(ctx context.Context, eventID string, r domain.AuditRecord) (domain.AuditRecord, bool, error)
}

// BudgetConfig configures the error-budget and aggregate duties.
type BudgetConfig struct {
	// Node is the ce-source of the events. Required.
	Node string
	// JS publishes the governance change events. Required.
	JS jetstream.JetStream
	// Governance is the KV bucket baldur_governance. Required.
	Governance jetstream.KeyValue
	// Store sums the rollups and appends the audit records. Required.
	Store BudgetStore
	// MinDelta is DefaultBudgetMinDelta when zero.
	MinDelta float64
	// Refresh is DefaultBudgetRefresh when zero.
	Refresh time.Duration
	// Logger receives level changes and failures; nil discards.
	Logger *slog.Logger
}

func (c *BudgetConfig) check() error {
	if c.Node == "" || c.JS == nil || c.Governance == nil || c.Store == nil {
		return fmt.Errorf("%w: the error budget needs Node, JS, Governance and Store", ErrInvalidConfig)
	}
	if c.MinDelta <= 0 {
		c.MinDelta = DefaultBudgetMinDelta
	}
	if c.Refresh <= 0 {
		c.Refresh = DefaultBudgetRefresh
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// BudgetStats counts what the error-budget duty did.
type BudgetStats struct {
	// Runs counts the runs with the gate enabled.
	Runs int64
	// Writes counts the error_budget values written.
	Writes int64
	// LevelChanges counts the level changes (each an event and an audit
	// record).
	LevelChanges int64
	// Conflicts counts lost compare-and-sets (retried).
	Conflicts int64
	// Level is the level last written or read.
	Level domain.ErrorBudgetLevel
}

// ErrorBudget is the duty that keeps the error_budget key of
// baldur_governance up to date. The SLO target and window are set by the
// governance command set_slo_target (applied by the breaker-workers); while
// no target is set the gate is off and the duty does nothing. Each run sums
// the outcome rollups over the window, computes the remaining budget
// (domain.ComputeErrorBudget) and writes it by compare-and-set when it
// changed materially: another level, a move of at least MinDelta, or changed
// counts on a value older than Refresh. Every level change (ok → warning
// below 20 %, → critical below 10 %, which blocks automated replay, and back)
// is published to baldur.event.governance.error_budget, with the seed's
// event name (ERROR_BUDGET_WARNING, _CRITICAL, _RECOVERED) leading its
// reason, and recorded in the audit log under the event's ce-id.
type ErrorBudget struct {
	cfg BudgetConfig

	runs, writes, levelChanges, conflicts atomic.Int64
	level                                 atomic.Value // domain.ErrorBudgetLevel

	mu sync.Mutex
	// pending is a level change written but not yet published and audited.
	pending *budgetChange
}

type budgetChange struct {
	id     uuid.UUID
	change events.GovernanceChange
}

// NewErrorBudget returns the error-budget duty.
func NewErrorBudget(cfg BudgetConfig) (*ErrorBudget, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	b := &ErrorBudget{cfg: cfg}
	b.level.Store(domain.ErrorBudgetLevel(""))
	return b, nil
}

// Name returns "error_budget".
func (b *ErrorBudget) Name() string { return "error_budget" }

// Stats returns the counters.
func (b *ErrorBudget) Stats() BudgetStats {
	return BudgetStats{Runs: b.runs.Load(), Writes: b.writes.Load(), LevelChanges: b.levelChanges.Load(),
		Conflicts: b.conflicts.Load(), Level: b.level.Load().(domain.ErrorBudgetLevel)}
}

// Run recomputes the budget at now.
func (b *ErrorBudget) Run(ctx context.Context, now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.announce(ctx); err != nil {
		return err
	}
	key := domain.GovernanceKeyErrorBudget
	for range budgetCASAttempts {
		e, err := b.cfg.Governance.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("watchdog: error budget: read %s: %w", key, err)
		}
		var cur domain.ErrorBudget
		if err := json.Unmarshal(e.Value(), &cur); err != nil {
			return fmt.Errorf("watchdog: error budget: %s holds %q: %w", key, clipValue(e.Value()), err)
		}
		if !cur.Enabled {
			return nil
		}
		b.runs.Add(1)
		sums, err := b.cfg.Store.SumRollups(ctx, now.Add(-cur.Window()))
		if err != nil {
			return fmt.Errorf("watchdog: error budget: %w", err)
		}
		var total, failed int64
		for _, o := range sums {
			total += o.Calls()
			failed += o.Failures
		}
		next, err := domain.ComputeErrorBudget(cur.SLOTarget, total, failed, now)
		if err != nil {
			return fmt.Errorf("watchdog: error budget: %w", err)
		}
		next.SLOWindow = cur.SLOWindow
		if !b.material(cur, next, now) {
			b.level.Store(cur.Level)
			return nil
		}
		val, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("watchdog: error budget: encode: %w", err)
		}
		rev, err := b.cfg.Governance.Update(ctx, key, val, e.Revision())
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			b.conflicts.Add(1)
			continue
		}
		if err != nil {
			return fmt.Errorf("watchdog: error budget: write %s: %w", key, err)
		}
		b.writes.Add(1)
		b.level.Store(next.Level)
		if levelOf(cur) == next.Level {
			return nil
		}
		b.levelChanges.Add(1)
		reason := budgetReason(levelOf(cur), next)
		b.cfg.Logger.WarnContext(ctx, "error budget level changed", slog.String("from", string(levelOf(cur))),
			slog.String("to", string(next.Level)), slog.Float64("remaining", next.Remaining), slog.String("reason", reason))
		b.pending = &budgetChange{
			id: uuid.NewSHA1(budgetNamespace, []byte(key+"."+strconv.FormatUint(rev, 10))),
			change: events.GovernanceChange{Key: events.GovernanceErrorBudget, Old: e.Value(), New: val,
				Reason: reason, At: now},
		}
		return b.announce(ctx)
	}
	return fmt.Errorf("watchdog: error budget: %s changed under %d compare-and-sets in a row", key, budgetCASAttempts)
}

// material reports whether next must be written over cur.
func (b *ErrorBudget) material(cur, next domain.ErrorBudget, now time.Time) bool {
	switch {
	case levelOf(cur) != next.Level:
		return true
	case math.Abs(cur.Remaining-next.Remaining) >= b.cfg.MinDelta:
		return true
	case cur.TotalCalls != next.TotalCalls || cur.FailedCalls != next.FailedCalls:
		return now.Sub(cur.UpdatedAt) >= b.cfg.Refresh
	}
	return false
}

// announce publishes and audits the pending level change; it stays pending
// (and is retried on the next run, under the same ce-id) when either fails.
func (b *ErrorBudget) announce(ctx context.Context) error {
	p := b.pending
	if p == nil {
		return nil
	}
	subj, err := events.GovernanceEventSubject(p.change.Key)
	if err != nil {
		return err
	}
	env := events.NewEnvelope(events.TypeGovernanceChanged, p.id, b.cfg.Node, p.change.At)
	msg, err := events.NewMsg(subj, env, p.change)
	if err != nil {
		return fmt.Errorf("watchdog: error budget event: %w", err)
	}
	if _, err := b.cfg.JS.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("watchdog: publish the error budget event: %w", err)
	}
	// The same record the replay-workers' audit consumer writes for this
	// event (replay.AuditRecordFor); the ce-id makes it one record.
	rec, ok, err := replay.AuditRecordFor(events.Message{Envelope: env, Payload: p.change})
	if err != nil || !ok {
		return fmt.Errorf("watchdog: the audit record of the error budget event: %w", err)
	}
	if _, _, err := b.cfg.Store.AppendAuditEvent(ctx, env.ID, rec); err != nil {
		return fmt.Errorf("watchdog: audit the error budget event: %w", err)
	}
	b.pending = nil
	return nil
}

// levelOf returns cur's level; a value without one (freshly enabled) is ok.
func levelOf(cur domain.ErrorBudget) domain.ErrorBudgetLevel {
	if cur.Level == "" {
		return domain.ErrorBudgetOK
	}
	return cur.Level
}

// budgetReason is the reason of a level change, led by the seed's event name.
func budgetReason(from domain.ErrorBudgetLevel, next domain.ErrorBudget) string {
	name := "ERROR_BUDGET_WARNING"
	switch {
	case next.Level == domain.ErrorBudgetCritical:
		name = "ERROR_BUDGET_CRITICAL"
	case next.Level == domain.ErrorBudgetOK,
		next.Level == domain.ErrorBudgetWarning && from == domain.ErrorBudgetCritical:
		name = "ERROR_BUDGET_RECOVERED"
	}
	gate := ""
	if next.Level == domain.ErrorBudgetCritical {
		gate = "; automated replay is blocked"
	}
	return fmt.Sprintf("%s: %s → %s, %.1f %% of the error budget remains (%d failed of %d calls, SLO %v over %s)%s",
		name, from, next.Level, next.Remaining*100, next.FailedCalls, next.TotalCalls, next.SLOTarget, next.Window(), gate)
}

func clipValue(v []byte) string {
	if len(v) > 128 {
		return string(v[:128]) + "…"
	}
	return string(v)
}

// AggregateSource gives the fleet-wide aggregate failure rate;
// *fleetstate.View satisfies it.
type AggregateSource interface {
	AggregateFailureRate() float64
	Len() int
}

// Aggregate is the duty that publishes the fleet-wide aggregate failure rate
// (Σ window failures / Σ window calls over every breaker, as the watchdog's
// fleet view sees them) to the key aggregate of baldur_governance, by
// compare-and-set, when it moved by DefaultAggregateMinDelta or the number
// of breakers changed, and otherwise every Refresh. It is information for
// dashboards and operators, not a governance input.
type Aggregate struct {
	kv      jetstream.KeyValue
	src     AggregateSource
	refresh time.Duration

	writes atomic.Int64
}

// NewAggregate returns the aggregate duty writing to the bucket
// baldur_governance kv; refresh 0 means DefaultBudgetRefresh.
func NewAggregate(kv jetstream.KeyValue, src AggregateSource, refresh time.Duration) (*Aggregate, error) {
	if kv == nil || src == nil {
		return nil, fmt.Errorf("%w: the aggregate needs the governance bucket and a fleet view", ErrInvalidConfig)
	}
	if refresh <= 0 {
		refresh = DefaultBudgetRefresh
	}
	return &Aggregate{kv: kv, src: src, refresh: refresh}, nil
}

// Name returns "aggregate".
func (a *Aggregate) Name() string { return "aggregate" }

// Writes returns the number of values written.
func (a *Aggregate) Writes() int64 { return a.writes.Load() }

// Run writes the aggregate at now when it changed or is due.
func (a *Aggregate) Run(ctx context.Context, now time.Time) error {
	next := domain.FleetAggregate{FailureRate: a.src.AggregateFailureRate(), Breakers: a.src.Len(), UpdatedAt: now}
	key := domain.GovernanceKeyAggregate
	var rev uint64
	e, err := a.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return fmt.Errorf("watchdog: aggregate: read: %w", err)
	default:
		rev = e.Revision()
		var cur domain.FleetAggregate
		if json.Unmarshal(e.Value(), &cur) == nil && cur.Breakers == next.Breakers &&
			math.Abs(cur.FailureRate-next.FailureRate) < DefaultAggregateMinDelta && now.Sub(cur.UpdatedAt) < a.refresh {
			return nil
		}
	}
	val, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("watchdog: aggregate: encode: %w", err)
	}
	if rev == 0 {
		_, err = a.kv.Create(ctx, key, val)
	} else {
		_, err = a.kv.Update(ctx, key, val, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil // another writer got there first; the next tick writes again
	}
	if err != nil {
		return fmt.Errorf("watchdog: aggregate: write: %w", err)
	}
	a.writes.Add(1)
	return nil
}
