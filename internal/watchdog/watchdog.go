package watchdog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Watchdog runs the fleet's periodic duties while it holds the leader lease.
// Create it with New, run it with Start, end it with Stop. It is safe for
// concurrent use.
type Watchdog struct {
	cfg   Config
	deps  Deps
	log   *slog.Logger
	epoch time.Time
	stats counters
	index *index

	duties []Duty
	// sent remembers the commands sent, by service and trigger.
	sentMu sync.Mutex
	sent   map[sentKey]sentCommand

	// renewed is the monotonic time (mono) of the start of the last
	// successful lease write, 0 when the lease is not held. leaseRev is only
	// touched by the lease goroutine and by Stop after it ended.
	renewed  atomic.Int64
	leaseRev uint64
	// lastPrune is the duties' time (UnixNano) of the last rollup prune.
	lastPrune atomic.Int64

	tickMu  sync.Mutex // one tick at a time
	started atomic.Bool
	stopped atomic.Bool
	killed  atomic.Bool
	cancel  context.CancelFunc

	leaseDone, loopDone, watchDone chan struct{}
}

// New returns a watchdog; it does nothing until Start.
func New(cfg Config, deps Deps) (*Watchdog, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := deps.validate(); err != nil {
		return nil, err
	}
	w := &Watchdog{
		cfg:   cfg,
		deps:  deps,
		log:   cfg.Logger.With(slog.String("component", "watchdog"), slog.String("node", cfg.Node)),
		epoch: time.Now(),
		index: newIndex(),
		sent:  map[sentKey]sentCommand{},
		stats: counters{commands: map[string]int64{}, duties: map[string]DutyStats{}},
	}
	w.duties = append(w.builtinDuties(), deps.Duties...)
	return w, nil
}

// Start syncs the breaker index, then runs the lease and the tick loop in the
// background until Stop or until ctx ends.
func (w *Watchdog) Start(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel = cancel
	w.watchDone = make(chan struct{})
	if err := w.watchBreakers(run); err != nil {
		cancel()
		return fmt.Errorf("watch baldur_breakers: %w", err)
	}
	w.leaseDone, w.loopDone = make(chan struct{}), make(chan struct{})
	go w.leaseLoop(run)
	go w.loop(run)
	go func() {
		select {
		case <-ctx.Done():
			cancel()
		case <-run.Done():
		}
	}()
	w.log.InfoContext(ctx, "watchdog started", slog.Duration("tick", w.cfg.Tick),
		slog.Duration("lease_ttl", w.leaseTTL()), slog.Int("breakers", w.index.len()))
	return nil
}

// Stop ends the loops, waits for a tick in progress (bounded by ctx) and
// releases the lease so that a standby takes over at once.
func (w *Watchdog) Stop(ctx context.Context) error {
	if !w.started.Load() {
		return ErrNotStarted
	}
	if !w.stopped.CompareAndSwap(false, true) {
		return nil
	}
	w.cancel()
	for _, ch := range []chan struct{}{w.loopDone, w.leaseDone, w.watchDone} {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("stop watchdog: %w", ctx.Err())
		}
	}
	if !w.killed.Load() {
		w.release(ctx)
	}
	return nil
}

// loop ticks every cfg.Tick while the lease is fresh.
func (w *Watchdog) loop(ctx context.Context) {
	defer close(w.loopDone)
	t := time.NewTicker(w.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.killed.Load() {
			return
		}
		if err := w.Tick(ctx); err != nil && !errors.Is(err, ErrNotLeader) && ctx.Err() == nil {
			w.log.WarnContext(ctx, "tick failed", slog.Any("error", err))
		}
	}
}

// Tick runs every duty once at the configured clock's time, if this watchdog
// holds a fresh lease (else ErrNotLeader). A failing duty does not stop the
// others; the error names every duty that failed and wraps ErrDuty. The
// loop calls it every Config.Tick; tests call it directly.
func (w *Watchdog) Tick(ctx context.Context) error {
	if !w.started.Load() {
		return ErrNotStarted
	}
	w.tickMu.Lock()
	defer w.tickMu.Unlock()
	if !w.fresh() {
		return ErrNotLeader
	}
	now := w.cfg.Clock()
	w.stats.ticks.Add(1)
	var errs []error
	for _, d := range w.duties {
		if ctx.Err() != nil {
			break
		}
		if !w.fresh() {
			errs = append(errs, fmt.Errorf("%w: lease went stale before %s", ErrNotLeader, d.Name()))
			break
		}
		err := d.Run(ctx, now)
		w.stats.duty(d.Name(), err != nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", ErrDuty, d.Name(), err))
		}
	}
	return errors.Join(errs...)
}
