// Command breaker-worker folds outcome reports and breaker commands into the
// fleet's breaker state in NATS KV, applies governance commands and serves
// half-open permits. See docs/breaker-worker.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/telemetry"
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
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "breaker-worker", NodeID: cfg.NodeID})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()

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
	view, err := fleetstate.Watch(startCtx, js, fleetstate.WithLogger(log),
		fleetstate.WithRejected(rejectedPublisher(ctx, js, cfg.NodeID, log)))
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
	meter := telemetry.Meter("breaker-worker")
	for _, register := range []func(metric.Meter) (metric.Registration, error){w.RegisterMetrics, view.RegisterMetrics} {
		reg, err := register(meter)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		defer func() { _ = reg.Unregister() }()
	}
	if cfg.HTTPAddr != "" {
		srv, err := telemetry.Serve(cfg.HTTPAddr, telemetry.Handler(tel.Metrics(),
			telemetry.NATSCheck(nc),
			telemetry.StreamsCheck(js, topology.StreamInput, topology.StreamEvents),
		), log)
		if err != nil {
			return fmt.Errorf("%w: %w", process.ErrInvalidConfig, err)
		}
		defer srv.Close()
	}
	log.Info("breaker-worker running", slog.String("nats", cfg.RedactedNATSURL()))
	<-ctx.Done()
	log.Info("stopping")
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelStop()
	return w.Stop(stopCtx)
}

// rejectedNamespace derives the ce-id of a rejected config or governance
// value from what was refused, so that every worker refusing the same value
// publishes the same Nats-Msg-Id and the events stream keeps one event.
var rejectedNamespace = uuid.MustParse("5e0d6a3b-1f7c-4c2e-9b8a-2d4f6e8a0c13")

// rejectedPublisher returns the fleetstate.WithRejected callback: each
// refused value of baldur_config or baldur_governance is published to
// baldur.event.rejected.<kind> in the background (the callback runs on a
// watch goroutine and must not block).
func rejectedPublisher(ctx context.Context, js jetstream.JetStream, node string, log *slog.Logger) func(events.Rejected) {
	return func(r events.Rejected) {
		log.Warn("value refused", slog.String("kind", string(r.Kind)), slog.String("subject", r.Subject),
			slog.String("code", r.Code), slog.String("reason", r.Reason))
		go func() {
			subj, err := events.RejectedSubject(r.Kind)
			if err != nil {
				log.Warn("rejected event not published", slog.Any("error", err))
				return
			}
			id := uuid.NewSHA1(rejectedNamespace, []byte(r.Subject+"\x00"+r.Code+"\x00"+r.Reason))
			msg, err := events.NewMsg(subj, events.NewEnvelope(events.TypeRejected, id, node, r.At), r)
			if err != nil {
				log.Warn("rejected event not published", slog.Any("error", err))
				return
			}
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if _, err := js.PublishMsg(pctx, msg); err != nil {
				log.Warn("rejected event not published", slog.String("subject", subj), slog.Any("error", err))
			}
		}()
	}
}
