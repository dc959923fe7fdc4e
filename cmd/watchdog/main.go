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

	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/telemetry"
	"github.com/baldurfleet/baldur/internal/watchdog"
	"github.com/baldurfleet/baldur/internal/worker"
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

	res, err := worker.Open(ctx, pc, worker.Options{
		Name: name, Roles: []worker.Role{worker.RoleWatchdog}, Logger: log, Getenv: getenv, StartTimeout: startTimeout,
	})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, oneLine(err))
		if errors.Is(err, telemetry.ErrSetup) {
			return exitUsage
		}
		return exitFailed
	}
	defer func() { _ = res.Close(context.WithoutCancel(ctx)) }()
	w, err := worker.StartWatchdog(ctx, res, cfg)
	if err == nil {
		if _, err = res.ServeHealth(w.Checks()...); err != nil {
			err = errors.Join(err, w.Stop(context.WithoutCancel(ctx)))
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, oneLine(err))
		return exitFailed
	}
	log.Info("watchdog running", slog.String("nats", pc.RedactedNATSURL()), slog.String("database", process.Redact(pc.DatabaseURL)))
	<-ctx.Done()
	log.Info("stopping", slog.Duration("timeout", stopTimeout))
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := w.Stop(stopCtx); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, oneLine(err))
		return exitFailed
	}
	return exitOK
}

// oneLine flattens a joined error into one line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
