// Command breaker-worker folds outcome reports and breaker commands into the
// fleet's breaker state in NATS KV, applies governance commands and serves
// half-open permits. See docs/breaker-worker.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/topology"
	"github.com/baldurfleet/baldur/internal/worker"
)

// name is the binary's name, in its flags' usage and in NATS.
const name = "breaker-worker"

// stopTimeout bounds the graceful stop.
const stopTimeout = 30 * time.Second

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "breaker-worker:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	flags := process.NewFlags(name)
	partitions := flags.Int("partitions", "BALDUR_PARTITIONS", topology.DefaultPartitions, "partitions of BALDUR_INPUT (fixed once the stream exists)")
	leaseTTL := flags.Duration("lease-ttl", "BALDUR_LEASE_TTL", topology.DefaultLeaseTTL, "partition lease TTL: a dead worker's partitions are taken over after about this")
	batch := flags.Int("batch-size", "BALDUR_BATCH_SIZE", breaker.DefaultBatchSize, "messages folded per batch and partition")
	maxBreakers := flags.Int("max-breakers", "BALDUR_MAX_BREAKERS", breaker.DefaultMaxBreakers, "cap on live breakers fleet-wide: inputs for a new name beyond it are rejected (code breaker_cap)")
	cfg, err := flags.Parse(args, nil)
	if err != nil {
		return err
	}
	if *maxBreakers < 1 {
		return fmt.Errorf("--max-breakers %d: want at least 1", *maxBreakers)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return worker.Run(ctx, cfg, worker.Options{
		Name: name, Roles: []worker.Role{worker.RoleBreaker}, Logger: cfg.Logger(os.Stderr),
		Topology: topology.Config{Replicas: cfg.Replicas, Partitions: *partitions, LeaseTTL: *leaseTTL},
	}, func(ctx context.Context, res *worker.Resources) (*worker.Breaker, error) {
		return worker.StartBreaker(ctx, res, breaker.Config{BatchSize: *batch, MaxBreakers: *maxBreakers})
	}, stopTimeout, nil)
}

// rejectedPublisher is the view's callback for refused values (the test of
// this command checks the wiring through it).
var rejectedPublisher = worker.RejectedPublisher
