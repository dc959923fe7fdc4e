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
	"strings"
	"syscall"
	"time"

	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/telemetry"
	"github.com/baldurfleet/baldur/internal/worker"
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
	res, err := worker.Open(ctx, pc, worker.Options{
		Name: name, Roles: []worker.Role{worker.RoleReplay}, Logger: log, Getenv: getenv, StartTimeout: startTimeout,
	})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, oneLine(err))
		if errors.Is(err, telemetry.ErrSetup) {
			return exitUsage
		}
		return exitFailed
	}
	defer func() { _ = res.Close(context.WithoutCancel(ctx)) }()
	w, err := worker.StartReplay(ctx, res, worker.ReplayConfig{Config: cfg})
	if err == nil {
		if _, err = res.ServeHealth(w.Checks()...); err != nil {
			err = errors.Join(err, w.Stop(context.WithoutCancel(ctx)))
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, oneLine(err))
		return exitFailed
	}
	log.Info("replay-worker running", slog.String("nats", pc.RedactedNATSURL()), slog.String("database", process.Redact(pc.DatabaseURL)))
	if ready != nil {
		ready(w.Worker)
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

// oneLine flattens a joined error into one line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", ";") }
