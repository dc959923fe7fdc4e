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
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/baldurfleet/baldur/internal/buildinfo"
	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/worker"
)

// name is the binary's name, in its flags' usage and in NATS.
const name = "replay-worker"

// Exit codes.
const (
	exitOK     = worker.ExitOK
	exitFailed = worker.ExitFailed
	exitUsage  = worker.ExitUsage
)

// startTimeout bounds connecting, migrating and creating the topology.
const startTimeout = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil))
}

// run is the whole program: it returns when ctx ends (a signal), after a
// graceful stop, or at once when the start fails, with the exit code;
// --version prints the build to stdout and exits 0. ready,
// when not nil, is called once the worker runs.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready func(*replay.Worker)) int {
	if buildinfo.Requested(args) {
		buildinfo.Print(os.Stdout, name)
		return exitOK
	}
	return worker.ExitCode(stderr, name, runErr(ctx, args, getenv, stderr, ready))
}

func runErr(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready func(*replay.Worker)) error {
	f := process.NewFlags(name)
	f.FlagSet().SetOutput(stderr)
	ingestBatch := f.Int("ingest-batch", "BALDUR_INGEST_BATCH", replay.DefaultIngestBatch, "most dead letters fetched and inserted at once")
	ingestWait := f.Duration("ingest-max-wait", "BALDUR_INGEST_MAX_WAIT", replay.DefaultIngestMaxWait, "how long a fetch waits for a batch to fill")
	maxPending := f.Int(replay.FlagMaxPendingPerService, replay.EnvMaxPendingPerService, replay.DefaultMaxPendingPerService,
		"most live dead letters (pending, replaying, in review) of one service in PostgreSQL; beyond it new ones are refused (rejected event backlog_full); -1 for no bound")
	leaseTTL := f.Duration("lease-ttl", "BALDUR_REPLAY_LEASE_TTL", replay.DefaultLeaseTTL, "lifetime of a service's replay lease between renewals")
	replayTimeout := f.Duration("replay-timeout", "BALDUR_REPLAY_TIMEOUT", replay.DefaultRequestTimeout, "timeout of one replay request to a service")
	auditKeyFile := f.AuditKeyFile()
	shutdown := f.Duration("shutdown-timeout", "BALDUR_SHUTDOWN_TIMEOUT", replay.DefaultShutdownTimeout, "bound of a graceful stop")
	buildinfo.AddFlag(f.FlagSet())
	pc, err := f.Parse(args, getenv)
	if err != nil {
		return worker.Usage(err)
	}
	if err := worker.RequireDatabase(pc); err != nil {
		return err
	}
	auditKey, err := process.LoadAuditKey(*auditKeyFile, getenv)
	if err != nil {
		return worker.Usage(err)
	}
	cfg := replay.Config{
		NodeID:          pc.NodeID,
		Ingest:          replay.IngestConfig{Batch: *ingestBatch, MaxWait: *ingestWait, MaxPendingPerService: int64(*maxPending)},
		Engine:          replay.EngineConfig{LeaseTTL: *leaseTTL, RequestTimeout: *replayTimeout},
		ShutdownTimeout: *shutdown,
	}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return worker.Usage(err)
	}
	var onReady func(*worker.Replay)
	if ready != nil {
		onReady = func(r *worker.Replay) { ready(r.Worker) }
	}
	return worker.Run(ctx, pc, worker.Options{
		Name: name, Roles: []worker.Role{worker.RoleReplay}, Logger: pc.Logger(stderr), Getenv: getenv, StartTimeout: startTimeout,
		AuditKey: auditKey,
	}, func(ctx context.Context, res *worker.Resources) (*worker.Replay, error) {
		return worker.StartReplay(ctx, res, worker.ReplayConfig{Config: cfg})
	}, cfg.ShutdownTimeout, onReady)
}
