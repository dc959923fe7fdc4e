package topology_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

func TestEnsureReplayCreatesConsumersIdempotently(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx := context.Background()
	_, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 2})
	require.NoError(t, err)

	first, err := topology.EnsureReplay(ctx, env.JS, topology.Config{})
	require.NoError(t, err)
	again, err := topology.EnsureReplay(ctx, env.JS, topology.Config{})
	require.NoError(t, err, "a second EnsureReplay finds what the first created")

	for _, c := range []struct {
		name string
		have jetstream.Consumer
		redo jetstream.Consumer
	}{
		{topology.ConsumerReplayIngest, first.Ingest, again.Ingest},
		{topology.ConsumerReplayTriggers, first.Triggers, again.Triggers},
		{topology.ConsumerAudit, first.Audit, again.Audit},
	} {
		require.Equal(t, c.name, c.have.CachedInfo().Name)
		require.Equal(t, c.name, c.redo.CachedInfo().Name)
	}
	ing := first.Ingest.CachedInfo().Config
	require.Equal(t, topology.StreamDLQ, first.Ingest.CachedInfo().Stream)
	require.Equal(t, events.FilterDLQ, ing.FilterSubject)
	require.Equal(t, -1, ing.MaxDeliver, "a dead letter is never dropped after N deliveries")
	require.Equal(t, jetstream.AckExplicitPolicy, ing.AckPolicy)
}

func TestEnsureReplayRoutesEvents(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx := context.Background()
	_, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 1})
	require.NoError(t, err)
	rc, err := topology.EnsureReplay(ctx, env.JS, topology.Config{})
	require.NoError(t, err)

	for _, subj := range []string{
		"baldur.event.breaker.payments.closed",
		"baldur.event.breaker.payments.opened",
		"baldur.event.governance.kill_switch",
		"baldur.event.replay.payments.blocked",
		"baldur.event.replay.payments.completed",
		"baldur.event.rejected.dlq",
	} {
		_, err := env.JS.Publish(ctx, subj, []byte(`{}`))
		require.NoError(t, err)
	}
	require.Equal(t, []string{"baldur.event.breaker.payments.closed"}, drain(t, rc.Triggers, 1))
	require.Equal(t, []string{
		"baldur.event.breaker.payments.closed",
		"baldur.event.breaker.payments.opened",
		"baldur.event.governance.kill_switch",
		"baldur.event.replay.payments.blocked",
	}, drain(t, rc.Audit, 4))
}

func TestEnsureReplayRefusesChangedFilters(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx := context.Background()
	_, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 1})
	require.NoError(t, err)
	_, err = env.JS.CreateConsumer(ctx, topology.StreamEvents, jetstream.ConsumerConfig{
		Durable:       topology.ConsumerAudit,
		FilterSubject: "baldur.event.breaker.>",
		AckPolicy:     jetstream.AckExplicitPolicy,
	})
	require.NoError(t, err)
	_, err = topology.EnsureReplay(ctx, env.JS, topology.Config{})
	require.ErrorIs(t, err, topology.ErrIncompatible)
	require.ErrorContains(t, err, topology.ConsumerAudit)
}

func TestEnsureReplayRefusesBadConfig(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	_, err := topology.EnsureReplay(context.Background(), env.JS, topology.Config{Replicas: 9})
	require.ErrorIs(t, err, topology.ErrInvalidConfig)
}

// drain fetches n messages from c, acks them and returns their subjects.
func drain(t *testing.T, c jetstream.Consumer, n int) []string {
	t.Helper()
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	var got []string
	for m := range batch.Messages() {
		require.NoError(t, m.Ack())
		got = append(got, m.Subject())
	}
	require.NoError(t, batch.Error())
	return got
}
