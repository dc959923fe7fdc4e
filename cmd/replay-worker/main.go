// Command replay-worker ingests dead letters from JetStream into PostgreSQL,
// replays a service's backlog when its breaker closes, serves the DLQ
// endpoints (the micro service baldur-dlq) and writes the audit log. Run as
// many as needed: they share durable consumers and queue groups.
//
// Configuration is the shared process flags (--nats-url, --database-url,
// --node-id, ...; see -h) plus the replay-worker's own. It creates the
// topology it needs and migrates the database at start, and exits non-zero
// with a one-line reason when NATS or PostgreSQL is unreachable.
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
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/db"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/telemetry"
	"github.com/baldurfleet/baldur/internal/topology"
)

// name is the binary's name, in its flags' usage and in NATS.
const name = "replay-worker"

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// startTimeout bounds connecting, migrating and creating the topology.
const startTimeout = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil))
}

// run is the whole program: it returns when ctx ends (a signal), after a
// graceful stop, or at once when the start fails. ready, when not nil, is
// called once the worker runs.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready func(*replay.Worker)) int {
	f := process.NewFlags(name)
	f.FlagSet().SetOutput(stderr)
	ingestBatch := f.Int("ingest-batch", "BALDUR_INGEST_BATCH", replay.DefaultIngestBatch, "most dead letters fetched and inserted at once")
	ingestWait := f.Duration("ingest-max-wait", "BALDUR_INGEST_MAX_WAIT", replay.DefaultIngestMaxWait, "how long a fetch waits for a batch to fill")
	leaseTTL := f.Duration("lease-ttl", "BALDUR_REPLAY_LEASE_TTL", replay.DefaultLeaseTTL, "lifetime of a service's replay lease between renewals")
	replayTimeout := f.Duration("replay-timeout", "BALDUR_REPLAY_TIMEOUT", replay.DefaultRequestTimeout, "timeout of one replay request to a service")
	shutdown := f.Duration("shutdown-timeout", "BALDUR_SHUTDOWN_TIMEOUT", replay.DefaultShutdownTimeout, "bound of a graceful stop")
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
	cfg := replay.Config{
		NodeID:          pc.NodeID,
		Ingest:          replay.IngestConfig{Batch: *ingestBatch, MaxWait: *ingestWait},
		Engine:          replay.EngineConfig{LeaseTTL: *leaseTTL, RequestTimeout: *replayTimeout},
		ShutdownTimeout: *shutdown,
	}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, oneLine(err))
		return exitUsage
	}
	log := pc.Logger(stderr)
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: name, NodeID: pc.NodeID, Getenv: getenv})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, oneLine(err))
		return exitUsage
	}
	defer shutdownTelemetry(tel, log)

	w, closeAll, err := start(ctx, pc, cfg, log, tel)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, oneLine(err))
		return exitFailed
	}
	defer closeAll()
	if ready != nil {
		ready(w)
	}
	<-ctx.Done()
	log.Info("stopping", slog.Duration("timeout", cfg.ShutdownTimeout))
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := w.Stop(stopCtx); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, oneLine(err))
		return exitFailed
	}
	return exitOK
}

// start connects, migrates, creates the topology and starts the worker. The
// returned func closes what start opened.
func start(ctx context.Context, pc process.Config, cfg replay.Config, log *slog.Logger, tel *telemetry.Provider) (*replay.Worker, func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (*replay.Worker, func(), error) {
		closeAll()
		return nil, nil, err
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
	if _, err := topology.Ensure(sctx, js, tc); err != nil {
		return fail(err)
	}
	if _, err := topology.EnsureReplay(sctx, js, tc); err != nil {
		return fail(err)
	}
	view, err := fleetstate.Watch(sctx, js, fleetstate.WithLogger(log))
	if err != nil {
		return fail(fmt.Errorf("watch the fleet state: %w", err))
	}
	closers = append(closers, view.Stop)

	w, err := replay.New(cfg, replay.Deps{
		Store:  store.New(pool, store.WithRetryPolicy(cfg.Retry)),
		NC:     nc,
		JS:     js,
		View:   replay.FleetView(view),
		Logger: log,
	})
	if err != nil {
		return fail(err)
	}
	if err := w.Start(ctx); err != nil {
		return fail(err)
	}
	reg, err := w.RegisterMetrics(telemetry.Meter(name))
	if err != nil {
		_ = w.Stop(context.WithoutCancel(ctx))
		return fail(fmt.Errorf("metrics: %w", err))
	}
	closers = append(closers, func() { _ = reg.Unregister() })
	if pc.HTTPAddr != "" {
		srv, err := telemetry.Serve(pc.HTTPAddr, telemetry.Handler(tel.Metrics(),
			telemetry.NATSCheck(nc),
			telemetry.StreamsCheck(js, topology.StreamDLQ, topology.StreamEvents),
			telemetry.PostgresCheck(pool),
			ingestCheck(w),
		), log)
		if err != nil {
			_ = w.Stop(context.WithoutCancel(ctx))
			return fail(fmt.Errorf("%w: %w", process.ErrInvalidConfig, err))
		}
		closers = append(closers, srv.Close)
	}
	log.Info("replay-worker running", slog.String("nats", pc.RedactedNATSURL()), slog.String("database", process.Redact(pc.DatabaseURL)))
	return w, closeAll, nil
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

// ingestCheck is not ready while ingest is paused because PostgreSQL fails.
func ingestCheck(w *replay.Worker) telemetry.Check {
	return telemetry.Check{Name: "ingest", Func: func(context.Context) error {
		if in := w.Ingest(); in != nil && in.Stats().Paused {
			return errors.New("ingest paused: PostgreSQL fails")
		}
		return nil
	}}
}

// shutdownTelemetry flushes the telemetry providers at exit.
func shutdownTelemetry(tel *telemetry.Provider, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		log.Warn("telemetry not flushed", slog.Any("error", err))
	}
}

// oneLine flattens a joined error into one line.
func oneLine(err error) string {
	b := []byte(err.Error())
	for i, c := range b {
		if c == '\n' {
			b[i] = ';'
		}
	}
	return string(b)
}
