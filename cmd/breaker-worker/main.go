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

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/topology"
)

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
	flags := process.NewFlags("breaker-worker")
	partitions := flags.Int("partitions", "BALDUR_PARTITIONS", topology.DefaultPartitions, "partitions of BALDUR_INPUT (fixed once the stream exists)")
	leaseTTL := flags.Duration("lease-ttl", "BALDUR_LEASE_TTL", topology.DefaultLeaseTTL, "partition lease TTL: a dead worker's partitions are taken over after about this")
	batch := flags.Int("batch-size", "BALDUR_BATCH_SIZE", breaker.DefaultBatchSize, "messages folded per batch and partition")
	cfg, err := flags.Parse(args, nil)
	if err != nil {
		return err
	}
	log := cfg.Logger(os.Stderr)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nc, err := cfg.Connect(startCtx, "breaker-worker "+cfg.NodeID)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	top, err := topology.Ensure(startCtx, js, topology.Config{Replicas: cfg.Replicas, Partitions: *partitions, LeaseTTL: *leaseTTL})
	if err != nil {
		return err
	}
	view, err := fleetstate.Watch(startCtx, js, fleetstate.WithLogger(log))
	if err != nil {
		return err
	}
	defer view.Stop()
	w, err := breaker.New(js, breaker.Config{
		Topology: top, Node: cfg.NodeID, Configs: view, Governance: view, Logger: log, BatchSize: *batch, Conn: nc,
	})
	if err != nil {
		return err
	}
	if err := w.Start(startCtx); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("stopping")
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelStop()
	return w.Stop(stopCtx)
}
