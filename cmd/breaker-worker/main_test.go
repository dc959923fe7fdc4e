package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// TestInvalidConfigIsPublishedAsRejected checks the wiring of main: a value
// of baldur_config the view refuses becomes one rejected event of kind
// config, however many workers refuse it.
func TestInvalidConfigIsPublishedAsRejected(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	top, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 1, Storage: jetstream.MemoryStorage})
	require.NoError(t, err)
	log := slog.New(slog.DiscardHandler)
	for _, node := range []string{"bw-1", "bw-2"} {
		view, err := fleetstate.Watch(ctx, env.JS, fleetstate.WithRejected(rejectedPublisher(ctx, env.JS, node, log)))
		require.NoError(t, err)
		t.Cleanup(view.Stop)
	}
	_, err = top.ConfigKV.Put(ctx, "payments", []byte(`{"failure_threshold":-1}`))
	require.NoError(t, err)

	subj, err := events.RejectedSubject(events.RejectedConfig)
	require.NoError(t, err)
	var msgs []jetstream.Msg
	require.Eventually(t, func() bool {
		c, err := env.JS.OrderedConsumer(ctx, topology.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
		if err != nil {
			return false
		}
		b, err := c.FetchNoWait(10)
		if err != nil {
			return false
		}
		msgs = msgs[:0]
		for m := range b.Messages() {
			msgs = append(msgs, m)
		}
		return len(msgs) > 0
	}, 10*time.Second, 10*time.Millisecond)

	m, err := events.Decode(msgs[0].Subject(), msgs[0].Headers(), msgs[0].Data())
	require.NoError(t, err)
	r, ok := m.Payload.(events.Rejected)
	require.True(t, ok)
	require.Equal(t, events.RejectedConfig, r.Kind)
	require.Contains(t, r.Subject, "payments")
	require.Contains(t, r.Reason, "failure_threshold")

	// Both workers refuse the value; their events carry the same derived
	// ce-id, so the stream keeps one.
	info, err := env.JS.Stream(ctx, topology.StreamEvents)
	require.NoError(t, err)
	st, err := info.Info(ctx, jetstream.WithSubjectFilter(subj))
	require.NoError(t, err)
	require.Equal(t, uint64(1), st.State.Subjects[subj])
}
