package breaker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

type stateBundle struct {
	env   *testenv.NATSEnv
	top   *topology.Topology
	store *breaker.StateStore
}

func setupState(t *testing.T) stateBundle {
	t.Helper()
	env := testenv.NATS(t)
	top, err := topology.Ensure(context.Background(), env.JS, topology.Config{Partitions: 2})
	require.NoError(t, err)
	return stateBundle{env: env, top: top, store: breaker.NewStateStore(top.Breakers, env.JS, "test-node", nil)}
}

func forceOpen(at time.Time) breaker.FoldFunc {
	return func(b domain.Breaker) (domain.Breaker, domain.Result) {
		return b.Apply(domain.CommandInput(domain.Command{ID: "c1", Action: domain.ActionOpen, Actor: "sre", Reason: "test"}),
			domain.Env{Now: at, Config: domain.DefaultConfig()})
	}
}

func breakerEvents(t *testing.T, js jetstream.JetStream) []jetstream.Msg {
	t.Helper()
	ctx := context.Background()
	c, err := js.OrderedConsumer(ctx, topology.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.FilterBreakerEvents}})
	require.NoError(t, err)
	info, err := c.Info(ctx)
	require.NoError(t, err)
	n := int(info.NumPending)
	var out []jetstream.Msg
	if n == 0 {
		return nil
	}
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	for m := range batch.Messages() {
		out = append(out, m)
	}
	return out
}

func TestStateStoreWritesAndPublishesOnce(t *testing.T) {
	t.Parallel()
	b := setupState(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

	got, res, err := b.store.Update(ctx, "payments", forceOpen(at))
	require.NoError(t, err)
	require.True(t, res.Changed)
	require.Len(t, res.Transitions, 1)
	require.Empty(t, got.PendingEvents, "published events are cleared")

	stored, rev, err := b.store.Get(ctx, "payments")
	require.NoError(t, err)
	require.NotZero(t, rev)
	require.Equal(t, domain.StateOpen, stored.State)
	require.Equal(t, uint64(1), stored.Generation)
	require.Empty(t, stored.PendingEvents)

	// The same command again is a duplicate: nothing written, nothing published.
	_, res, err = b.store.Update(ctx, "payments", forceOpen(at))
	require.NoError(t, err)
	require.False(t, res.Changed)

	evs := breakerEvents(t, b.env.JS)
	require.Len(t, evs, 1)
	require.Equal(t, "baldur.event.breaker.payments.opened", evs[0].Subject())
	require.Equal(t, "payments.1", evs[0].Headers().Get("Nats-Msg-Id"))
}

func TestStateStorePublishesWhatADeadWriterLeftPending(t *testing.T) {
	t.Parallel()
	b := setupState(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

	// A writer stored a transition and died before publishing it.
	opened, res := domain.NewBreaker("ledger").Apply(domain.CommandInput(domain.Command{ID: "c1",
		Action: domain.ActionOpen, Actor: "sre", Reason: "test"}), domain.Env{Now: at, Config: domain.DefaultConfig()})
	opened.PendingEvents = res.Transitions
	_, err := b.top.Breakers.Create(ctx, "ledger", mustJSON(t, opened))
	require.NoError(t, err)

	// Another writer, with nothing of its own to change, publishes it.
	got, res, err := b.store.Update(ctx, "ledger", func(b domain.Breaker) (domain.Breaker, domain.Result) {
		return b, domain.Result{}
	})
	require.NoError(t, err)
	require.False(t, res.Changed)
	require.Empty(t, got.PendingEvents)

	// The dead writer had in fact published before dying: the stream drops the copy.
	require.NoError(t, b.store.PublishTransition(ctx, opened.PendingEvents[0]))
	evs := breakerEvents(t, b.env.JS)
	require.Len(t, evs, 1, "one event per transition, also across a writer's death")
}

func TestStateStoreCompareAndSetUnderContention(t *testing.T) {
	t.Parallel()
	b := setupState(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	const writers, reports = 4, 25
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range reports {
				_, _, err := b.store.Update(ctx, "search", func(cur domain.Breaker) (domain.Breaker, domain.Result) {
					return cur.Apply(domain.ReportInput(domain.Report{Node: "n", Successes: 1, At: at}),
						domain.Env{Now: at.Add(time.Duration(w*reports+i) * time.Millisecond), Config: domain.DefaultConfig()})
				})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		require.NoError(t, <-errs)
	}
	got, _, err := b.store.Get(ctx, "search")
	require.NoError(t, err)
	require.Equal(t, int64(writers*reports), got.Window.Successes, "no write lost to a concurrent writer")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
