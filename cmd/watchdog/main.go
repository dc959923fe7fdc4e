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
// --node-id, ...; see -h) plus --tick, --lease-ttl, --retention and
// --idle-after (breakers without activity for that long are archived). It
// creates the topology it needs and migrates the database at start, and exits
// non-zero with a one-line reason when NATS or PostgreSQL is unreachable.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/baldurfleet/baldur/internal/buildinfo"
	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/watchdog"
	"github.com/baldurfleet/baldur/internal/worker"
)

// name is the binary's name, in its flags' usage and in NATS.
const name = "watchdog"

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
// graceful stop, or at once when the start fails, with the exit code;
// --version prints the build to stdout and exits 0.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	if buildinfo.Requested(args) {
		buildinfo.Print(os.Stdout, name)
		return worker.ExitOK
	}
	return worker.ExitCode(stderr, name, runErr(ctx, args, getenv, stderr))
}

func runErr(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	f := process.NewFlags(name)
	f.FlagSet().SetOutput(stderr)
	tick := f.Duration("tick", "BALDUR_WATCHDOG_TICK", watchdog.DefaultTick, "interval of the watchdog's duties")
	leaseTTL := f.Duration("lease-ttl", "BALDUR_WATCHDOG_LEASE_TTL", watchdog.DefaultLeaseTTL, "lifetime of the leader lease between renewals")
	auditKeyFile := f.AuditKeyFile()
	retention := f.Duration("retention", "BALDUR_WATCHDOG_RETENTION", watchdog.DefaultRetention, "how long terminal dead letters are kept after their expires_at")
	idleAfter := f.Duration("idle-after", "BALDUR_WATCHDOG_IDLE_AFTER", watchdog.DefaultIdleAfter, "archive breakers closed in auto mode without activity for this long (1m to 8784h; 0 turns idle archival off)")
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
	log := pc.Logger(stderr)
	cfg := watchdog.Config{Node: pc.NodeID, Tick: *tick, LeaseTTL: *leaseTTL, Retention: *retention, IdleAfter: *idleAfter, Logger: log}
	switch {
	case *idleAfter == 0:
		cfg.IdleAfter = -1 // 0 on the command line turns idle archival off
	case *idleAfter < 0:
		return worker.Usage(fmt.Errorf("--idle-after %s is negative; 0 turns idle archival off", *idleAfter))
	}
	if err := cfg.WithDefaults().Validate(); err != nil {
		return worker.Usage(err)
	}
	return worker.Run(ctx, pc, worker.Options{
		Name: name, Roles: []worker.Role{worker.RoleWatchdog}, Logger: log, Getenv: getenv, StartTimeout: startTimeout,
		AuditKey: auditKey,
	}, func(ctx context.Context, res *worker.Resources) (*worker.Watchdog, error) {
		return worker.StartWatchdog(ctx, res, cfg)
	}, stopTimeout, nil)
}
