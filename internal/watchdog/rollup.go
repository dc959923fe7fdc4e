package watchdog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/topology"
)

// Defaults of RollupOptions.
const (
	// DefaultRollupBatch is the most outcome reports fetched and written per
	// statement.
	DefaultRollupBatch = 1000
	// DefaultRollupWait is how long a fetch waits for its first report.
	DefaultRollupWait = time.Second
	// DefaultRollupRetryDelay is how long a batch whose write failed waits
	// before it is delivered again.
	DefaultRollupRetryDelay = 2 * time.Second
)

// RollupStore is what the rollup consumer needs of *store.Store.
type RollupStore interface {
	AddRollups(ctx context.Context, rollups []store.Rollup) error
}

// RollupOptions configures Rollups. The zero value is usable.
type RollupOptions struct {
	// Batch is DefaultRollupBatch when zero.
	Batch int
	// Wait is DefaultRollupWait when zero.
	Wait time.Duration
	// RetryDelay is DefaultRollupRetryDelay when zero.
	RetryDelay time.Duration
	// Logger receives failed writes; nil discards.
	Logger *slog.Logger
}

// RollupStats counts what the rollup consumer did.
type RollupStats struct {
	// Reports is the number of outcome reports written to the rollups.
	Reports int64
	// Batches is the number of AddRollups statements committed.
	Batches int64
	// Skipped is the number of malformed reports left out (terminated on this
	// consumer; the breaker-workers publish their rejected events).
	Skipped int64
	// Failures is the number of batches whose write failed and that were
	// handed back for redelivery.
	Failures int64
}

// Rollups adds the outcome reports of BALDUR_INPUT to the per-minute rollups
// in PostgreSQL that the error budget is computed from. It reads the shared
// durable consumer topology.ConsumerWatchdogRollups and runs on every
// watchdog instance, active or standby: the consumer hands each report to
// one of them, and the rollups keep growing while the leader changes.
//
// A report counts in the minute the stream stored it (its JetStream
// timestamp, the server's clock, not the reporter's). A fetched batch is
// summed per (service, minute), written in one statement and acked only
// after the commit; a failed write naks the batch for redelivery. A report
// is therefore counted at least once: a watchdog that dies between the
// commit and its acks counts that batch again when it is redelivered.
type Rollups struct {
	cons  jetstream.Consumer
	store RollupStore
	opts  RollupOptions
	log   *slog.Logger

	reports, batches, skipped, failures atomic.Int64

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewRollups returns a rollup consumer reading cons (topology.EnsureWatchdog)
// and writing to st.
func NewRollups(cons jetstream.Consumer, st RollupStore, opts RollupOptions) *Rollups {
	if opts.Batch <= 0 {
		opts.Batch = DefaultRollupBatch
	}
	if opts.Wait <= 0 {
		opts.Wait = DefaultRollupWait
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = DefaultRollupRetryDelay
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Rollups{cons: cons, store: st, opts: opts, log: log}
}

// Start begins consuming in the background until Stop.
func (r *Rollups) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return ErrStarted
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		for runCtx.Err() == nil {
			if _, err := r.Once(runCtx); err != nil && runCtx.Err() == nil {
				r.log.WarnContext(runCtx, "watchdog: outcome rollups", slog.String("error", err.Error()))
				select {
				case <-runCtx.Done():
				case <-time.After(r.opts.RetryDelay):
				}
			}
		}
	}()
	return nil
}

// Stop stops consuming and waits for the batch in progress to be written
// and acked, or for ctx to end.
func (r *Rollups) Stop(ctx context.Context) error {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel, r.done = nil, nil
	r.mu.Unlock()
	if cancel == nil {
		return ErrNotStarted
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("watchdog: stop the outcome rollups: %w", ctx.Err())
	}
}

// Stats returns the counters.
func (r *Rollups) Stats() RollupStats {
	return RollupStats{Reports: r.reports.Load(), Batches: r.batches.Load(), Skipped: r.skipped.Load(), Failures: r.failures.Load()}
}

// Once fetches one batch (waiting up to the configured Wait for it), writes
// it and acks it, and returns the number of reports written. Start calls it
// in a loop; tests may call it directly.
func (r *Rollups) Once(ctx context.Context) (int, error) {
	batch, err := r.cons.Fetch(r.opts.Batch, jetstream.FetchMaxWait(r.opts.Wait))
	if err != nil {
		return 0, fmt.Errorf("watchdog: fetch outcome reports: %w", err)
	}
	var (
		msgs    []jetstream.Msg
		rollups []store.Rollup
	)
	for msg := range batch.Messages() {
		ro, ok := rollupOf(msg)
		if !ok {
			r.skipped.Add(1)
			// The breaker-workers reject it with an event; here it is only
			// left out of the rollups.
			_ = msg.Term()
			continue
		}
		msgs = append(msgs, msg)
		rollups = append(rollups, ro)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && len(msgs) == 0 {
		return 0, fmt.Errorf("watchdog: fetch outcome reports: %w", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	if err := r.store.AddRollups(ctx, rollups); err != nil {
		r.failures.Add(1)
		for _, m := range msgs {
			_ = m.NakWithDelay(r.opts.RetryDelay)
		}
		return 0, fmt.Errorf("watchdog: write %d outcome reports to the rollups: %w", len(msgs), err)
	}
	r.batches.Add(1)
	r.reports.Add(int64(len(msgs)))
	for _, m := range msgs {
		if err := m.Ack(); err != nil {
			r.log.WarnContext(ctx, "watchdog: ack an outcome report", slog.String("error", err.Error()))
		}
	}
	return len(msgs), nil
}

// rollupOf returns the rollup of one stored outcome report, false when the
// message is not a well-formed report.
func rollupOf(msg jetstream.Msg) (store.Rollup, bool) {
	subj, err := events.ParseSubject(topology.OriginalSubject(msg.Subject()))
	if err != nil || subj.Kind != events.SubjectOutcome {
		return store.Rollup{}, false
	}
	rep, err := events.DecodeOutcome(msg.Data())
	if err != nil {
		return store.Rollup{}, false
	}
	meta, err := msg.Metadata()
	if err != nil {
		return store.Rollup{}, false
	}
	return store.Rollup{
		Service:  subj.Service,
		Minute:   meta.Timestamp.UTC().Truncate(time.Minute),
		Outcomes: store.Outcomes{Successes: rep.Successes, Failures: rep.Failures, SlowCalls: rep.SlowCalls},
	}, true
}
