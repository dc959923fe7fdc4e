package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"go.opentelemetry.io/otel/metric"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/telemetry"
	"github.com/baldurfleet/baldur/internal/topology"
	"github.com/baldurfleet/baldur/internal/watchdog"
)

// running is what every started role has: readiness checks and a stop that
// runs once.
type running struct {
	checks []telemetry.Check
	stop   func(ctx context.Context) error
	once   sync.Once
	err    error
}

// Checks returns the role's readiness checks (the streams it uses and, for
// the replay-worker, ingest not paused), for Resources.ServeHealth or
// Resources.Health.
func (r *running) Checks() []telemetry.Check { return r.checks }

// Stop stops the role gracefully within ctx and unregisters its metrics. It
// is safe to call more than once; later calls return the first's error.
func (r *running) Stop(ctx context.Context) error {
	r.once.Do(func() { r.err = r.stop(ctx) })
	return r.err
}

// registerMetrics registers each observable-metrics callback on the meter of
// component and returns what unregisters them all.
func (r *Resources) registerMetrics(component string, regs ...func(metric.Meter) (metric.Registration, error)) (func(), error) {
	m := r.meter(component)
	var done []metric.Registration
	unregister := func() {
		for i := len(done) - 1; i >= 0; i-- {
			_ = done[i].Unregister()
		}
	}
	for _, register := range regs {
		reg, err := register(m)
		if err != nil {
			unregister()
			return nil, fmt.Errorf("metrics: %w", err)
		}
		done = append(done, reg)
	}
	return unregister, nil
}

// Breaker is a running breaker-worker.
type Breaker struct {
	// Worker is the worker that runs.
	Worker *breaker.Worker
	running
}

// StartBreaker starts a breaker-worker on res, which Open must have opened
// for RoleBreaker. Fields of cfg left zero take res's: Topology, Configs,
// Governance and Breakers (the view), Conn (half-open permits), Node (the
// process's node id) and Logger. ctx bounds the start; the worker runs
// until Stop.
func StartBreaker(ctx context.Context, res *Resources, cfg breaker.Config) (*Breaker, error) {
	if err := res.need(RoleBreaker); err != nil {
		return nil, err
	}
	if cfg.Topology == nil {
		cfg.Topology = res.Topology
	}
	if cfg.Configs == nil {
		cfg.Configs = res.View
	}
	if cfg.Governance == nil {
		cfg.Governance = res.View
	}
	if cfg.Breakers == nil {
		cfg.Breakers = res.View
	}
	if cfg.Conn == nil {
		cfg.Conn = res.NC
	}
	if cfg.Node == "" {
		cfg.Node = res.Config.NodeID
	}
	if cfg.Logger == nil {
		cfg.Logger = res.Log
	}
	w, err := breaker.New(res.JS, cfg)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, res.startTimeout)
	defer cancel()
	if err := w.Start(sctx); err != nil {
		return nil, err
	}
	unregister, err := res.registerMetrics(RoleBreaker.String(), w.RegisterMetrics, res.View.RegisterMetrics)
	if err != nil {
		return nil, errors.Join(err, w.Stop(context.WithoutCancel(ctx)))
	}
	return &Breaker{Worker: w, running: running{
		checks: []telemetry.Check{telemetry.StreamsCheck(res.JS, topology.StreamInput, topology.StreamEvents)},
		stop: func(ctx context.Context) error {
			defer unregister()
			return w.Stop(ctx)
		},
	}}, nil
}

// ReplayConfig configures StartReplay.
type ReplayConfig struct {
	// Config is the replay-worker's configuration; StartReplay applies its
	// defaults, and a zero NodeID takes the process's node id.
	replay.Config
	// Logger receives the worker's logs; nil is the Resources' logger.
	Logger *slog.Logger
}

// Replay is a running replay-worker.
type Replay struct {
	// Worker is the worker that runs.
	Worker *replay.Worker
	running
}

// StartReplay starts a replay-worker on res, which Open must have opened for
// RoleReplay: its store is res.Pool with cfg's retry policy. ctx is the
// worker's life: its components stop taking work when it ends, and Stop
// stops them gracefully.
func StartReplay(ctx context.Context, res *Resources, cfg ReplayConfig) (*Replay, error) {
	if err := res.need(RoleReplay); err != nil {
		return nil, err
	}
	if cfg.NodeID == "" {
		cfg.NodeID = res.Config.NodeID
	}
	if cfg.Logger == nil {
		cfg.Logger = res.Log
	}
	rc := cfg.Config.WithDefaults()
	w, err := replay.New(rc, replay.Deps{
		Store:  res.Store(store.WithRetryPolicy(rc.Retry)),
		NC:     res.NC,
		JS:     res.JS,
		View:   replay.FleetView(res.View),
		Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	if err := w.Start(ctx); err != nil {
		return nil, err
	}
	unregister, err := res.registerMetrics(RoleReplay.String(), w.RegisterMetrics)
	if err != nil {
		return nil, errors.Join(err, w.Stop(context.WithoutCancel(ctx)))
	}
	return &Replay{Worker: w, running: running{
		checks: []telemetry.Check{
			telemetry.StreamsCheck(res.JS, topology.StreamDLQ, topology.StreamEvents),
			ingestCheck(w),
		},
		stop: func(ctx context.Context) error {
			defer unregister()
			return w.Stop(ctx)
		},
	}}, nil
}

// ingestCheck is not ready while ingest is paused because PostgreSQL fails.
func ingestCheck(w *replay.Worker) telemetry.Check {
	return telemetry.Check{Name: "ingest", Func: func(context.Context) error {
		if in := w.Ingest(); in != nil && in.Stats().Paused {
			return errors.New("ingest paused: PostgreSQL fails")
		}
		return nil
	}}
}

// Watchdog is a running watchdog and its outcome rollups.
type Watchdog struct {
	// Watchdog is the watchdog that runs.
	Watchdog *watchdog.Watchdog
	// Rollups folds outcome reports into the per-minute rollups.
	Rollups *watchdog.Rollups
	running
}

// StartWatchdog starts the outcome rollups and the watchdog, with the error
// budget, aggregate failure rate and cell duties, on res, which Open must
// have opened for RoleWatchdog. A zero cfg.Node takes the process's node id,
// a nil cfg.Logger the Resources' logger. ctx bounds the start; both run
// until Stop.
func StartWatchdog(ctx context.Context, res *Resources, cfg watchdog.Config) (*Watchdog, error) {
	if err := res.need(RoleWatchdog); err != nil {
		return nil, err
	}
	if cfg.Node == "" {
		cfg.Node = res.Config.NodeID
	}
	if cfg.Logger == nil {
		cfg.Logger = res.Log
	}
	st := res.Store()
	duties, err := extraDuties(res, st, cfg.Node, cfg.Logger)
	if err != nil {
		return nil, err
	}
	rollups := watchdog.NewRollups(res.Rollups, st, watchdog.RollupOptions{Logger: cfg.Logger})
	if err := rollups.Start(ctx); err != nil {
		return nil, fmt.Errorf("start the outcome rollups: %w", err)
	}
	stopRollups := func() error { return rollups.Stop(context.WithoutCancel(ctx)) }
	w, err := watchdog.New(cfg, watchdog.Deps{JS: res.JS, Topology: res.Topology, Store: st, Configs: res.View, Duties: duties})
	if err != nil {
		return nil, errors.Join(err, stopRollups())
	}
	if err := w.Start(ctx); err != nil {
		return nil, errors.Join(err, stopRollups())
	}
	unregister, err := res.registerMetrics(RoleWatchdog.String(), w.RegisterMetrics)
	if err != nil {
		return nil, errors.Join(err, w.Stop(context.WithoutCancel(ctx)), stopRollups())
	}
	return &Watchdog{Watchdog: w, Rollups: rollups, running: running{
		checks: []telemetry.Check{telemetry.StreamsCheck(res.JS, topology.StreamInput, topology.StreamDLQ, topology.StreamEvents)},
		stop: func(ctx context.Context) error {
			defer unregister()
			return errors.Join(w.Stop(ctx), rollups.Stop(ctx))
		},
	}}, nil
}

// extraDuties are the watchdog's duties beyond the built-in ones: the error
// budget, the aggregate failure rate and the cell reconciliation.
func extraDuties(res *Resources, st *store.Store, node string, log *slog.Logger) ([]watchdog.Duty, error) {
	top := res.Topology
	budget, err := watchdog.NewErrorBudget(watchdog.BudgetConfig{Node: node, JS: res.JS, Governance: top.Governance, Store: st, Logger: log})
	if err != nil {
		return nil, err
	}
	aggregate, err := watchdog.NewAggregate(top.Governance, res.View, 0)
	if err != nil {
		return nil, err
	}
	cells, err := watchdog.NewCells(top.ConfigKV, top.Breakers, res.JS, node, log)
	if err != nil {
		return nil, err
	}
	return []watchdog.Duty{budget, aggregate, cells}, nil
}
