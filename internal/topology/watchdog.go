package topology

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ConsumerWatchdogRollups is the durable pull consumer on BALDUR_INPUT from
// which the watchdogs add outcome reports to the per-minute rollups in
// PostgreSQL (the error budget's input). Every watchdog instance binds to it,
// so each report is rolled up by one of them.
const ConsumerWatchdogRollups = "watchdog-rollups"

// WatchdogRollupFilter is the stored subject of every outcome report:
// baldur.in.<partition>.outcome.<svc>.
const WatchdogRollupFilter = "baldur.in.*.outcome.*"

// Settings of the rollup consumer.
const (
	// WatchdogRollupsAckWait is how long a fetched report stays with one
	// watchdog before it is redelivered.
	WatchdogRollupsAckWait = 30 * time.Second
	// WatchdogRollupsMaxAckPending bounds the reports fetched and not yet
	// acked across all watchdogs.
	WatchdogRollupsMaxAckPending = 50_000
)

// WatchdogConsumerConfig returns the configuration EnsureWatchdog creates,
// for cfg's replicas (0 means DefaultReplicas).
func WatchdogConsumerConfig(cfg Config) jetstream.ConsumerConfig {
	replicas := cfg.Replicas
	if replicas == 0 {
		replicas = DefaultReplicas
	}
	return jetstream.ConsumerConfig{
		Durable:       ConsumerWatchdogRollups,
		Description:   "Watchdogs: outcome reports into per-minute rollups",
		FilterSubject: WatchdogRollupFilter,
		// Explicit acks: several watchdogs share the consumer, so one
		// instance's ack must never cover another's unwritten reports.
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       WatchdogRollupsAckWait,
		MaxDeliver:    -1,
		MaxAckPending: WatchdogRollupsMaxAckPending,
		// Everything the stream still holds (InputMaxAge): reports published
		// before the first watchdog started count towards the budget.
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      replicas,
	}
}

// EnsureWatchdog creates the watchdogs' rollup consumer when it is missing
// and checks the filter of one that exists (ErrIncompatible when it
// differs). The stream must exist (Ensure).
func EnsureWatchdog(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Consumer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return ensureDurable(ctx, js, StreamInput, WatchdogConsumerConfig(cfg))
}
