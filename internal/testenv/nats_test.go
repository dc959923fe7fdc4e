package testenv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/testenv"
)

func TestNATSJetStreamRoundTrip(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx := t.Context()

	s, err := env.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "ROUNDTRIP", Subjects: []string{"rt.>"}})
	require.NoError(t, err)
	for i := range 3 {
		_, err := env.JS.Publish(ctx, "rt.msg", fmt.Appendf(nil, "m%d", i))
		require.NoError(t, err)
	}
	requireConsume(t, s, "m0", "m1", "m2")
}

// TestNATSIsPrivate checks that two tests' servers share nothing.
func TestNATSIsPrivate(t *testing.T) {
	t.Parallel()
	a, b := testenv.NATS(t), testenv.NATS(t)
	require.NotEqual(t, a.URL, b.URL)
	_, err := a.JS.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ONLY_A", Subjects: []string{"a.>"}})
	require.NoError(t, err)
	_, err = b.JS.Stream(t.Context(), "ONLY_A")
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound)
}

func TestNATSClusterSurvivesLostNode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// victim picks the node to stop, given the stream leader.
		victim func(leader, size int) int
	}{
		{name: "follower", victim: func(leader, size int) int { return (leader + 1) % size }},
		{name: "stream leader", victim: func(leader, _ int) int { return leader }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := testenv.NATSCluster(t, 3)
			ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
			defer cancel()

			s, err := env.JS.CreateStream(ctx, jetstream.StreamConfig{
				Name: "DURABLE", Subjects: []string{"d.>"}, Replicas: 3, Storage: jetstream.FileStorage,
			})
			require.NoError(t, err)
			cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
				Durable: "reader", AckPolicy: jetstream.AckExplicitPolicy,
			})
			require.NoError(t, err)
			_, err = env.JS.Publish(ctx, "d.before", []byte("before"))
			require.NoError(t, err)

			leader := env.Cluster.StreamLeader("DURABLE")
			require.GreaterOrEqual(t, leader, 0, "an R3 stream has a leader")
			victim := tc.victim(leader, env.Cluster.Size())
			env.StopNode(t, victim)
			require.False(t, env.Cluster.Running(victim))

			// JetStream publishes retry while a new stream leader is elected.
			_, err = env.JS.Publish(ctx, "d.after", []byte("after"),
				jetstream.WithRetryAttempts(200), jetstream.WithRetryWait(50*time.Millisecond))
			require.NoError(t, err)
			requireFetch(ctx, t, cons, "before", "after")

			env.RestartNode(t, victim)
			require.Eventually(t, func() bool {
				srv := env.Cluster.Server(victim)
				return srv != nil && srv.JetStreamIsStreamCurrent("$G", "DURABLE")
			}, 30*time.Second, 50*time.Millisecond, "the restarted node catches up with the stream")
		})
	}
}

// requireConsume reads a stream from the start with an ordered consumer and
// requires exactly the given payloads.
func requireConsume(t *testing.T, s jetstream.Stream, want ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	requireFetch(ctx, t, cons, want...)
}

// requireFetch fetches and acks from cons until it has len(want) messages,
// retrying while the consumer has no leader, and requires exactly the given
// payloads.
func requireFetch(ctx context.Context, t *testing.T, cons jetstream.Consumer, want ...string) {
	t.Helper()
	var got []string
	for len(got) < len(want) {
		require.NoError(t, ctx.Err(), "fetched %q of %q", got, want)
		batch, err := cons.Fetch(len(want)-len(got), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue
		}
		for m := range batch.Messages() {
			got = append(got, string(m.Data()))
			require.NoError(t, m.Ack())
		}
	}
	require.Equal(t, want, got)
}
