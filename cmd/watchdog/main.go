// Command watchdog is the fleet's clock and janitor: one active instance
// fleet-wide (a lease in baldur_partitions; run two or more, the others
// stand by) sends the breaker commands whose deadlines passed (recovery
// timeouts, expired manual modes and overrides, stuck half-open windows),
// rescues replays whose lease expired, flags dead letters past their SLA,
// expires and purges old entries, keeps the error budget and the aggregate
// failure rate, and reconciles cells. Every watchdog adds outcome reports to
// the per-minute rollups in PostgreSQL.
//
// Configuration is the shared process flags (--nats-url, --database-url,
// --node-id, ...; see -h) plus --tick, --lease-ttl and --retention. It
// creates the topology it needs and migrates the database at start, and exits
// non-zero with a one-line reason when NATS or PostgreSQL is unreachable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/db"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/telemetry"
	"github.com/baldurfleet/baldur/internal/topology"
	"github.com/baldurfleet/baldur/internal/watchdog"
)

// name is the binary's name, in its flags' usage and in NATS.
const name = "watchdog"

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// Timeouts of start and stop.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stderr))
}

// run is the whole program: it returns when ctx ends (a signal), after a
// graceful stop, or at once when the start fails.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	f := process.NewFlags(name)
	f.FlagSet().SetOutput(stderr)
	tick := f.Duration("tick", "BALDUR_WATCHDOG_TICK", watchdog.DefaultTick, "interval of the watchdog's duties")
	leaseTTL := f.Duration("lease-ttl", "BALDUR_WATCHDOG_LEASE_TTL", watchdog.DefaultLeaseTTL, "lifetime of the leader lease between renewals")
	retention := f.Duration("retention", "BALDUR_WATCHDOG_RETENTION", watchdog.DefaultRetention, "how long terminal dead letters are kept after their expires_at")
	pc, err := f.Parse(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitUsage
	}
	if pc.DatabaseURL == "" {
		fmt.Fprintf(stderr, "%s: %v: --database-url ($%s) is required\n", name, process.ErrInvalidConfig, process.EnvDatabaseURL)
		return exitUsage
	}
	log := pc.Logger(stderr)
	cfg := watchdog.Config{Node: pc.NodeID, Tick: *tick, LeaseTTL: *leaseTTL, Retention: *retention, Logger: log}
	if err := cfg.WithDefaults().Validate(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, oneLine(err))
		return exitUsage
	}

	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: name, NodeID: pc.NodeID, Getenv: getenv})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, oneLine(err))
		return exitUsage
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()

	stopAll, err := start(ctx, pc, cfg, log, tel)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, oneLine(err))
		return exitFailed
	}
	<-ctx.Done()
	log.Info("stopping", slog.Duration("timeout", stopTimeout))
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := stopAll(stopCtx); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, oneLine(err))
		return exitFailed
	}
	return exitOK
}

// start connects, migrates, creates the topology and starts the rollups and
// the watchdog. The returned func stops and closes everything.
func start(ctx context.Context, pc process.Config, cfg watchdog.Config, log *slog.Logger, tel *telemetry.Provider) (func(context.Context) error, error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (func(context.Context) error, error) {
		closeAll()
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	nc, err := pc.Connect(sctx, name, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		log.Warn("NATS error", slog.Any("error", err))
	}))
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { _ = nc.Drain() })
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(fmt.Errorf("JetStream: %w", err))
	}
	pool, err := openDatabase(sctx, pc.DatabaseURL)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, pool.Close)

	tc := topology.Config{Replicas: pc.Replicas}
	top, err := topology.Ensure(sctx, js, tc)
	if err != nil {
		return fail(err)
	}
	rollupConsumer, err := topology.EnsureWatchdog(sctx, js, tc)
	if err != nil {
		return fail(err)
	}
	view, err := fleetstate.Watch(sctx, js, fleetstate.WithLogger(log))
	if err != nil {
		return fail(fmt.Errorf("watch the fleet state: %w", err))
	}
	closers = append(closers, view.Stop)
	st := store.New(pool)

	duties, err := extraDuties(js, top, st, view, pc.NodeID, log)
	if err != nil {
		return fail(err)
	}
	rollups := watchdog.NewRollups(rollupConsumer, st, watchdog.RollupOptions{Logger: log})
	if err := rollups.Start(ctx); err != nil {
		return fail(fmt.Errorf("start the outcome rollups: %w", err))
	}
	w, err := watchdog.New(cfg, watchdog.Deps{JS: js, Topology: top, Store: st, Configs: view, Duties: duties})
	if err != nil {
		_ = rollups.Stop(context.WithoutCancel(ctx))
		return fail(err)
	}
	if err := w.Start(ctx); err != nil {
		_ = rollups.Stop(context.WithoutCancel(ctx))
		return fail(err)
	}
	reg, err := w.RegisterMetrics(telemetry.Meter(name))
	if err != nil {
		_ = errors.Join(w.Stop(context.WithoutCancel(ctx)), rollups.Stop(context.WithoutCancel(ctx)))
		return fail(fmt.Errorf("metrics: %w", err))
	}
	closers = append(closers, func() { _ = reg.Unregister() })
	if pc.HTTPAddr != "" {
		srv, err := telemetry.Serve(pc.HTTPAddr, telemetry.Handler(tel.Metrics(),
			telemetry.NATSCheck(nc),
			telemetry.StreamsCheck(js, topology.StreamInput, topology.StreamDLQ, topology.StreamEvents),
			telemetry.PostgresCheck(pool),
		), log)
		if err != nil {
			_ = errors.Join(w.Stop(context.WithoutCancel(ctx)), rollups.Stop(context.WithoutCancel(ctx)))
			return fail(fmt.Errorf("%w: %w", process.ErrInvalidConfig, err))
		}
		closers = append(closers, srv.Close)
	}
	log.Info("watchdog running", slog.String("nats", pc.RedactedNATSURL()), slog.String("database", process.Redact(pc.DatabaseURL)))
	return func(ctx context.Context) error {
		defer closeAll()
		return errors.Join(w.Stop(ctx), rollups.Stop(ctx))
	}, nil
}

// extraDuties are the duties beyond the built-in ones: the error budget, the
// aggregate failure rate and the cell reconciliation.
func extraDuties(js jetstream.JetStream, top *topology.Topology, st *store.Store, view *fleetstate.View, node string, log *slog.Logger) ([]watchdog.Duty, error) {
	budget, err := watchdog.NewErrorBudget(watchdog.BudgetConfig{Node: node, JS: js, Governance: top.Governance, Store: st, Logger: log})
	if err != nil {
		return nil, err
	}
	aggregate, err := watchdog.NewAggregate(top.Governance, view, 0)
	if err != nil {
		return nil, err
	}
	cells, err := watchdog.NewCells(top.ConfigKV, top.Breakers, js, node, log)
	if err != nil {
		return nil, err
	}
	return []watchdog.Duty{budget, aggregate, cells}, nil
}

// openDatabase opens a pool on url, checks that PostgreSQL answers and
// migrates the schema to the latest version.
func openDatabase(ctx context.Context, url string) (*pgxpool.Pool, error) {
	where := process.Redact(url)
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%w: --database-url %s: %v", process.ErrInvalidConfig, where, err)
	}
	pcfg.ConnConfig.Tracer = telemetry.NewQueryTracer()
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("%w: --database-url %s: %v", process.ErrInvalidConfig, where, err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("%w: PostgreSQL at %s: %v", process.ErrUnreachable, where, err)
	}
	defer conn.Release()
	if err := db.Migrate(ctx, conn.Conn()); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate PostgreSQL at %s: %w", where, err)
	}
	return pool, nil
}

// oneLine flattens a joined error into one line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
