package topology_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

func fetchOne(t *testing.T, js jetstream.JetStream, p int) jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, topology.StreamInput, topology.ConsumerName(p))
	require.NoError(t, err)
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	for m := range batch.Messages() {
		require.NoError(t, m.Ack())
		return m
	}
	t.Fatalf("partition %d: no message (%v)", p, batch.Error())
	return nil
}

func TestEnsurePartitionsByService(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx := context.Background()
	top, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 8})
	require.NoError(t, err)
	require.Equal(t, 8, top.Config.Partitions)

	for _, svc := range []string{"payments", "ledger", "a", "Z-9_x"} {
		subj := events.MustOutcomeSubject(svc)
		_, err := env.JS.Publish(ctx, subj, []byte(`{}`))
		require.NoError(t, err)
		p := topology.Partition(svc, 8)
		m := fetchOne(t, env.JS, p)
		require.Equal(t, fmt.Sprintf("baldur.in.%d.outcome.%s", p, svc), m.Subject(),
			"the server's partition hash and topology.Partition agree")
		require.Equal(t, subj, topology.OriginalSubject(m.Subject()))
	}

	// Governance commands and malformed input subjects land in partition 0.
	for _, subj := range []string{events.SubjectGovernance, "baldur.outcome.a.b", "baldur.control.x.y.z"} {
		_, err := env.JS.Publish(ctx, subj, []byte(`{}`))
		require.NoError(t, err)
		m := fetchOne(t, env.JS, 0)
		require.Equal(t, subj, m.Subject())
		require.Equal(t, subj, topology.OriginalSubject(m.Subject()))
	}
}

func TestEnsureIsIdempotent(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx := context.Background()
	_, err := topology.Ensure(ctx, env.JS, topology.Config{})
	require.NoError(t, err)

	// An operator tunes a limit; a second start keeps it.
	s, err := env.JS.Stream(ctx, topology.StreamEvents)
	require.NoError(t, err)
	cfg := s.CachedInfo().Config
	cfg.MaxAge = 48 * time.Hour
	_, err = env.JS.UpdateStream(ctx, cfg)
	require.NoError(t, err)

	// An older version's stream lacks the governance subject: it is added.
	in, err := env.JS.Stream(ctx, topology.StreamInput)
	require.NoError(t, err)
	icfg := in.CachedInfo().Config
	icfg.Subjects = []string{events.FilterOutcome, events.FilterControl}
	_, err = env.JS.UpdateStream(ctx, icfg)
	require.NoError(t, err)

	_, err = topology.Ensure(ctx, env.JS, topology.Config{})
	require.NoError(t, err)

	s, err = env.JS.Stream(ctx, topology.StreamEvents)
	require.NoError(t, err)
	require.Equal(t, 48*time.Hour, s.CachedInfo().Config.MaxAge, "a tuned limit survives a restart")
	in, err = env.JS.Stream(ctx, topology.StreamInput)
	require.NoError(t, err)
	require.ElementsMatch(t, events.InputSubjects, in.CachedInfo().Config.Subjects)
}

func TestEnsureRefusesAnotherPartitionCount(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx := context.Background()
	_, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 4})
	require.NoError(t, err)
	_, err = topology.Ensure(ctx, env.JS, topology.Config{Partitions: 8})
	require.ErrorIs(t, err, topology.ErrIncompatible)
	require.ErrorContains(t, err, "partition count is fixed")
}

func TestEnsureValidatesConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []topology.Config{{Replicas: 7}, {Partitions: -1}, {Partitions: 1000}, {LeaseTTL: time.Millisecond}} {
		_, err := topology.Ensure(context.Background(), nil, cfg)
		require.ErrorIs(t, err, topology.ErrInvalidConfig, "%+v", cfg)
	}
}

func TestEnsureOnClusterWithReplicas(t *testing.T) {
	t.Parallel()
	env := testenv.NATSCluster(t, 3)
	ctx := context.Background()
	top, err := topology.Ensure(ctx, env.JS, topology.Config{Replicas: 3, Partitions: 4})
	require.NoError(t, err)
	for _, name := range []string{topology.StreamInput, topology.StreamDLQ, topology.StreamEvents} {
		s, err := env.JS.Stream(ctx, name)
		require.NoError(t, err)
		require.Equal(t, 3, s.CachedInfo().Config.Replicas, name)
	}
	kvs, err := env.JS.Stream(ctx, "KV_"+topology.BucketBreakers)
	require.NoError(t, err)
	require.Equal(t, 3, kvs.CachedInfo().Config.Replicas)
	require.NotNil(t, top.Breakers)
	_, err = topology.Ensure(ctx, env.JS, topology.Config{Replicas: 3, Partitions: 4})
	require.NoError(t, err, "second start on the cluster")
}

func TestPartitionIsStable(t *testing.T) {
	t.Parallel()
	require.Equal(t, topology.Partition("payments", 16), topology.Partition("payments", 16))
	for _, n := range []int{1, 2, 16, 256} {
		p := topology.Partition("payments", n)
		require.True(t, p >= 0 && p < n)
	}
	require.Equal(t, "baldur.governance", topology.OriginalSubject("baldur.governance"))
	require.Equal(t, "baldur.in.x", topology.OriginalSubject("baldur.in.x"))
}
