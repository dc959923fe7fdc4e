package breaker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/topology"
)

// Defaults of Config.
const (
	// DefaultBatchSize is how many messages a partition fetches at once.
	DefaultBatchSize = 1000
	// DefaultMaxBreakers is the fleet-wide cap on live breakers.
	DefaultMaxBreakers = 100_000
	// maxFetchWait bounds how long an idle partition waits for a message.
	maxFetchWait = time.Second
	// opTimeout bounds one operation of the worker: a breaker's update with
	// its retries (each request within it bounded by attemptTimeout), a
	// publish.
	opTimeout = 10 * time.Second
)

// Config configures a Worker.
type Config struct {
	// Topology is the created topology (topology.Ensure): the buckets, the
	// partition count and the lease TTL. Required.
	Topology *topology.Topology
	// Node is the worker's id: the ce-source of what it publishes and the
	// owner named in its partition leases. Required.
	Node string
	// Configs resolves each service's breaker config, live. Required.
	Configs ConfigSource
	// Governance returns the governance snapshot the fold checks manual
	// commands against. Required.
	Governance GovernanceSource
	// Logger receives the worker's logs; nil discards them.
	Logger *slog.Logger
	// Clock is the fold's time (Env.Now, times in events); nil is
	// time.Now. Lease timing always uses the monotonic wall clock.
	Clock func() time.Time
	// BatchSize is the most messages folded per batch and partition;
	// 0 means DefaultBatchSize.
	BatchSize int
	// FetchWait is how long an idle partition waits for a message before
	// checking its lease again; 0 means a quarter of the lease TTL, at most
	// one second. It must stay below a quarter of the TTL.
	FetchWait time.Duration
	// Conn, when set, serves half-open permits (baldur.permit.<svc>, queue
	// group baldur-permit) with a PermitServer the worker starts and stops.
	Conn *nats.Conn
	// MaxBreakers caps the live breakers fleet-wide: an input that would
	// create a breaker (the first for a name without one) while Breakers
	// counts MaxBreakers or more is rejected with code breaker_cap and
	// nothing is written; existing breakers fold as ever. 0 means
	// DefaultMaxBreakers.
	MaxBreakers int
	// Breakers counts the live breakers for MaxBreakers; nil takes Configs
	// when it counts them (*fleetstate.View does), and is otherwise
	// refused.
	Breakers BreakerCounter
}

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Topology == nil || c.Topology.Partitions == nil || c.Topology.Breakers == nil || c.Topology.Governance == nil:
		return c, fmt.Errorf("%w: Topology with its buckets is required (topology.Ensure)", ErrInvalidWorkerConfig)
	case c.Node == "":
		return c, fmt.Errorf("%w: Node is required", ErrInvalidWorkerConfig)
	case c.Configs == nil:
		return c, fmt.Errorf("%w: Configs (a ConfigSource) is required", ErrInvalidWorkerConfig)
	case c.Governance == nil:
		return c, fmt.Errorf("%w: Governance (a GovernanceSource) is required", ErrInvalidWorkerConfig)
	case c.BatchSize < 0:
		return c, fmt.Errorf("%w: BatchSize %d is negative", ErrInvalidWorkerConfig, c.BatchSize)
	case c.MaxBreakers < 0:
		return c, fmt.Errorf("%w: MaxBreakers %d is negative", ErrInvalidWorkerConfig, c.MaxBreakers)
	}
	if c.Breakers == nil {
		bc, ok := c.Configs.(BreakerCounter)
		if !ok {
			return c, fmt.Errorf("%w: Breakers (a BreakerCounter) is required: Configs does not count breakers", ErrInvalidWorkerConfig)
		}
		c.Breakers = bc
	}
	if c.MaxBreakers == 0 {
		c.MaxBreakers = DefaultMaxBreakers
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	ttl := c.Topology.Config.LeaseTTL
	if ttl <= 0 {
		ttl = topology.DefaultLeaseTTL
		c.Topology.Config.LeaseTTL = ttl
	}
	if c.FetchWait == 0 {
		c.FetchWait = min(ttl/4, maxFetchWait)
	}
	if c.FetchWait <= 0 || c.FetchWait > ttl/4 {
		return c, fmt.Errorf("%w: FetchWait %s must be positive and at most a quarter of the lease TTL %s", ErrInvalidWorkerConfig, c.FetchWait, ttl)
	}
	return c, nil
}

// Worker is a breaker-worker: it owns a fair share of BALDUR_INPUT's
// partitions through leases in baldur_partitions, folds each owned
// partition's outcome reports and breaker commands into baldur_breakers by
// compare-and-set, applies governance commands, and refuses malformed input
// with rejected events. See docs/breaker-worker.md.
type Worker struct {
	js      jetstream.JetStream
	cfg     Config
	store   *StateStore
	permits *PermitServer
	log     *slog.Logger
	epoch   time.Time
	stats   counters

	started atomic.Bool
	stopped atomic.Bool
	crashed atomic.Bool

	// crashHook, set by tests, is asked before each ack whether to simulate
	// a crash between the breaker write and the ack.
	crashHook func(partition int) bool

	runCancel context.CancelFunc
	mgrDone   chan struct{}

	mu    sync.Mutex // guards owned and presenceRev
	owned map[int]*partition
}

// New returns a Worker over js. It does no I/O; Start starts it.
func New(js jetstream.JetStream, cfg Config) (*Worker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With(slog.String("component", "breaker-worker"))
	w := &Worker{
		js:    js,
		cfg:   cfg,
		store: NewStateStore(cfg.Topology.Breakers, js, cfg.Node, log),
		log:   log,
		epoch: time.Now(),
		owned: map[int]*partition{},
	}
	if cfg.Conn != nil {
		w.permits, err = NewPermitServer(cfg.Conn, w.store, cfg.Configs, cfg.Governance,
			WithPermitClock(cfg.Clock), WithPermitLogger(cfg.Logger), WithPermitSource(cfg.Node))
		if err != nil {
			return nil, err
		}
	}
	return w, nil
}

// Store returns the worker's breaker state store.
func (w *Worker) Store() *StateStore { return w.store }

// Start announces the worker, takes its first share of the partitions and
// starts folding them and the configured Services. ctx bounds the start; the
// worker then runs until Stop.
func (w *Worker) Start(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return ErrAlreadyStarted
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.runCancel = cancel
	w.mgrDone = make(chan struct{})
	if err := w.round(ctx, runCtx); err != nil {
		cancel()
		close(w.mgrDone)
		return err
	}
	if w.permits != nil {
		// The permit server outlives ctx, which bounds the start only; Stop
		// stops it.
		if err := w.permits.Start(context.WithoutCancel(ctx)); err != nil {
			cancel()
			close(w.mgrDone)
			return fmt.Errorf("breaker: start permit server: %w", err)
		}
	}
	go w.manage(runCtx)
	w.log.InfoContext(ctx, "breaker-worker started", slog.String("node", w.cfg.Node),
		slog.Int("partitions", w.cfg.Topology.Config.Partitions), slog.Int("owned", int(w.stats.partitions.Load())))
	return nil
}

// Stop stops the worker gracefully: each partition finishes and acks the
// batch in hand, the Services stop, and the partition leases and the
// presence key are released so that other workers take over at once. ctx
// bounds the wait.
func (w *Worker) Stop(ctx context.Context) error {
	if !w.started.Load() {
		return ErrNotStarted
	}
	if !w.stopped.CompareAndSwap(false, true) {
		return nil
	}
	w.runCancel()
	select {
	case <-w.mgrDone:
	case <-ctx.Done():
		return fmt.Errorf("breaker: stop: %w", ctx.Err())
	}
	w.mu.Lock()
	parts := make([]*partition, 0, len(w.owned))
	for _, pt := range w.owned {
		parts = append(parts, pt)
	}
	w.mu.Unlock()
	for _, pt := range parts {
		pt.cancel()
	}
	for _, pt := range parts {
		select {
		case <-pt.done:
		case <-ctx.Done():
			return fmt.Errorf("breaker: stop: partition %d: %w", pt.p, ctx.Err())
		}
	}
	if w.permits != nil {
		w.permits.Stop()
	}
	if w.crashed.Load() {
		return nil // a crashed worker releases nothing: its leases expire
	}
	for _, pt := range parts {
		w.release(ctx, pt)
	}
	if err := w.cfg.Topology.Partitions.Delete(ctx, presenceKey(w.cfg.Node)); err != nil {
		w.log.WarnContext(ctx, "presence key not deleted; it expires", slog.Any("error", err))
	}
	w.stats.partitions.Store(0)
	w.log.InfoContext(ctx, "breaker-worker stopped")
	return nil
}

// Owned returns the partitions the worker owns now, in no particular order.
func (w *Worker) Owned() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]int, 0, len(w.owned))
	for p := range w.owned {
		out = append(out, p)
	}
	return out
}

// mono returns the monotonic time since the worker was created, for lease
// freshness.
func (w *Worker) mono() time.Duration { return time.Since(w.epoch) }
