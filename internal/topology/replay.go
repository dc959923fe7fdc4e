package topology

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/events"
)

// Durable consumers of the replay-workers. Every replay-worker binds to the
// same three consumers, so each message goes to one of them.
const (
	// ConsumerReplayIngest is the durable pull consumer on BALDUR_DLQ that
	// ingests dead letters into PostgreSQL. BALDUR_DLQ is a work queue: a
	// message is removed once a replay-worker has committed it and acked it.
	ConsumerReplayIngest = "replay-ingest"
	// ConsumerReplayTriggers is the durable pull consumer on BALDUR_EVENTS
	// that receives the CLOSED transitions which start a replay
	// (baldur.event.breaker.*.closed).
	ConsumerReplayTriggers = "replay-triggers"
	// ConsumerAudit is the durable pull consumer on BALDUR_EVENTS that writes
	// the audit-worthy events into the audit log: every breaker transition
	// (the consumer keeps the manual ones), governance changes and replay
	// blocks.
	ConsumerAudit = "audit"
)

// Filter subjects of the replay-workers' consumers on BALDUR_EVENTS.
var (
	// ReplayTriggerFilters are the subjects ConsumerReplayTriggers takes.
	ReplayTriggerFilters = []string{"baldur.event.breaker.*." + string(events.BreakerClosed)}
	// AuditFilters are the subjects ConsumerAudit takes. Operator DLQ
	// actions are audited by the store in the transaction that applies them,
	// so they need no event here.
	AuditFilters = []string{
		events.FilterBreakerEvents,
		events.FilterGovernanceEvents,
		"baldur.event.replay.*." + string(events.ReplayBlocked),
	}
)

// Settings of the replay-workers' consumers.
const (
	// ReplayIngestAckWait is how long a fetched dead letter stays with one
	// replay-worker before it is redelivered. A worker holding a batch while
	// PostgreSQL is unreachable extends it with InProgress.
	ReplayIngestAckWait = 30 * time.Second
	// ReplayIngestMaxAckPending bounds the dead letters fetched and not yet
	// acked across all replay-workers.
	ReplayIngestMaxAckPending = 50_000
	// ReplayEventsAckWait is the ack wait of the trigger and audit consumers.
	ReplayEventsAckWait = 30 * time.Second
)

// ReplayConsumers are the replay-workers' consumers as created by
// EnsureReplay.
type ReplayConsumers struct {
	// Ingest is ConsumerReplayIngest on BALDUR_DLQ.
	Ingest jetstream.Consumer
	// Triggers is ConsumerReplayTriggers on BALDUR_EVENTS.
	Triggers jetstream.Consumer
	// Audit is ConsumerAudit on BALDUR_EVENTS.
	Audit jetstream.Consumer
}

// ReplayConsumerConfigs returns the configurations EnsureReplay creates, for
// cfg's replicas. cfg.Replicas 0 means DefaultReplicas.
func ReplayConsumerConfigs(cfg Config) (ingest, triggers, audit jetstream.ConsumerConfig) {
	replicas := cfg.Replicas
	if replicas == 0 {
		replicas = DefaultReplicas
	}
	ingest = jetstream.ConsumerConfig{
		Durable:       ConsumerReplayIngest,
		Description:   "Replay-workers: dead letters into PostgreSQL",
		FilterSubject: events.FilterDLQ,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ReplayIngestAckWait,
		// Unlimited deliveries: a dead letter is only ever removed by an ack
		// after its row is committed, or by a Term when it is malformed.
		MaxDeliver:    -1,
		MaxAckPending: ReplayIngestMaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      replicas,
	}
	triggers = jetstream.ConsumerConfig{
		Durable:        ConsumerReplayTriggers,
		Description:    "Replay-workers: breaker closes that start a replay",
		FilterSubjects: slices.Clone(ReplayTriggerFilters),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ReplayEventsAckWait,
		MaxAckPending:  1_000,
		// Only closes from now on: a replay-worker starting on an old stream
		// must not replay every close of the last week.
		DeliverPolicy: jetstream.DeliverNewPolicy,
		Replicas:      replicas,
	}
	audit = jetstream.ConsumerConfig{
		Durable:        ConsumerAudit,
		Description:    "Replay-workers: audit-worthy events into the audit log",
		FilterSubjects: slices.Clone(AuditFilters),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ReplayEventsAckWait,
		MaxAckPending:  10_000,
		// Everything the stream still holds: the audit log must not miss
		// what happened before the first replay-worker started.
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      replicas,
	}
	return ingest, triggers, audit
}

// EnsureReplay creates the replay-workers' durable consumers when they are
// missing and checks the filters of those that exist. The streams must exist
// (Ensure). Like Ensure, it never changes or deletes an existing consumer: one
// whose filters differ is refused with ErrIncompatible.
func EnsureReplay(ctx context.Context, js jetstream.JetStream, cfg Config) (ReplayConsumers, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return ReplayConsumers{}, err
	}
	ingest, triggers, audit := ReplayConsumerConfigs(cfg)
	var rc ReplayConsumers
	if rc.Ingest, err = ensureDurable(ctx, js, StreamDLQ, ingest); err != nil {
		return ReplayConsumers{}, err
	}
	if rc.Triggers, err = ensureDurable(ctx, js, StreamEvents, triggers); err != nil {
		return ReplayConsumers{}, err
	}
	if rc.Audit, err = ensureDurable(ctx, js, StreamEvents, audit); err != nil {
		return ReplayConsumers{}, err
	}
	return rc, nil
}

// ensureDurable creates want on stream when it does not exist and otherwise
// checks that its filters are want's.
func ensureDurable(ctx context.Context, js jetstream.JetStream, stream string, want jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := js.Consumer(ctx, stream, want.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err = js.CreateConsumer(ctx, stream, want)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			c, err = js.Consumer(ctx, stream, want.Durable)
		}
		if err != nil {
			return nil, fmt.Errorf("topology: create consumer %s on %s: %w", want.Durable, stream, err)
		}
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("topology: look up consumer %s on %s: %w", want.Durable, stream, err)
	}
	if have, wantF := filtersOf(c.CachedInfo().Config), filtersOf(want); !slices.Equal(have, wantF) {
		return nil, fmt.Errorf("%w: consumer %s on %s filters %v, want %v", ErrIncompatible, want.Durable, stream, have, wantF)
	}
	return c, nil
}

// filtersOf returns a consumer's filter subjects, sorted, whichever of the
// two fields holds them.
func filtersOf(c jetstream.ConsumerConfig) []string {
	f := slices.Clone(c.FilterSubjects)
	if c.FilterSubject != "" {
		f = append(f, c.FilterSubject)
	}
	slices.Sort(f)
	return f
}
