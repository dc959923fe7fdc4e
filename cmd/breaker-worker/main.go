// Command breaker-worker folds outcome reports and breaker commands into the
// fleet's breaker state in NATS KV, applies governance commands and serves
// half-open permits. See docs/breaker-worker.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/buildinfo"
	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/topology"
	"github.com/baldurfleet/baldur/internal/worker"
)

// name is the binary's name, in its flags' usage and in NATS.
const name = "breaker-worker"

// stopTimeout bounds the graceful stop.
const stopTimeout = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is the whole program: it returns when ctx ends (a signal), after a
// graceful stop, or at once when the start fails, with the exit code
// (worker.ExitOK, worker.ExitFailed, worker.ExitUsage).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if buildinfo.Requested(args) {
		buildinfo.Print(stdout, name)
		return worker.ExitOK
	}
	return worker.ExitCode(stderr, name, runErr(ctx, args, getenv, stderr))
}

func runErr(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	flags := process.NewFlags(name)
	flags.FlagSet().SetOutput(stderr)
	partitions := flags.Int("partitions", "BALDUR_PARTITIONS", topology.DefaultPartitions, "partitions of BALDUR_INPUT (fixed once the stream exists)")
	leaseTTL := flags.Duration("lease-ttl", "BALDUR_LEASE_TTL", topology.DefaultLeaseTTL, "partition lease TTL: a dead worker's partitions are taken over after about this")
	batch := flags.Int("batch-size", "BALDUR_BATCH_SIZE", breaker.DefaultBatchSize, "messages folded per batch and partition")
	maxBreakers := flags.Int("max-breakers", "BALDUR_MAX_BREAKERS", breaker.DefaultMaxBreakers, "cap on live breakers fleet-wide: inputs for a new name beyond it are rejected (code breaker_cap)")
	buildinfo.AddFlag(flags.FlagSet())
	cfg, err := flags.Parse(args, getenv)
	if err != nil {
		return worker.Usage(err)
	}
	// The ranges topology.Ensure and the breaker enforce, checked before
	// anything connects: a bad value is a usage error whether or not NATS
	// answers.
	switch {
	case *partitions < 1 || *partitions > topology.MaxPartitions:
		return worker.Usage(fmt.Errorf("%w: --partitions ($BALDUR_PARTITIONS) %d must be between 1 and %d", process.ErrInvalidConfig, *partitions, topology.MaxPartitions))
	case *leaseTTL < time.Second:
		return worker.Usage(fmt.Errorf("%w: --lease-ttl ($BALDUR_LEASE_TTL) %s must be at least 1s", process.ErrInvalidConfig, *leaseTTL))
	case *batch < 0:
		return worker.Usage(fmt.Errorf("%w: --batch-size ($BALDUR_BATCH_SIZE) %d is negative", process.ErrInvalidConfig, *batch))
	case *maxBreakers < 1:
		return worker.Usage(fmt.Errorf("%w: --max-breakers ($BALDUR_MAX_BREAKERS) %d must be at least 1", process.ErrInvalidConfig, *maxBreakers))
	}
	err = worker.Run(ctx, cfg, worker.Options{
		Name: name, Roles: []worker.Role{worker.RoleBreaker}, Logger: cfg.Logger(stderr), Getenv: getenv,
		Topology: topology.Config{Replicas: cfg.Replicas, Partitions: *partitions, LeaseTTL: *leaseTTL},
	}, func(ctx context.Context, res *worker.Resources) (*worker.Breaker, error) {
		return worker.StartBreaker(ctx, res, breaker.Config{BatchSize: *batch, MaxBreakers: *maxBreakers})
	}, stopTimeout, nil)
	if errors.Is(err, topology.ErrInvalidConfig) || errors.Is(err, breaker.ErrInvalidWorkerConfig) {
		return worker.Usage(err)
	}
	return err
}

// rejectedPublisher is the view's callback for refused values (the test of
// this command checks the wiring through it).
var rejectedPublisher = worker.RejectedPublisher
