package breaker_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
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

// lossyKV is the breakers bucket losing requests as a NATS node that goes
// away loses them: the first read gets no answer, and the first update is
// stored but its answer never arrives.
type lossyKV struct {
	jetstream.KeyValue
	loseRead, loseUpdateAnswer atomic.Bool
	// updates counts the updates stored.
	updates atomic.Int64
}

func (k *lossyKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	if k.loseRead.CompareAndSwap(true, false) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return k.KeyValue.Get(ctx, key)
}

func (k *lossyKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	rev, err := k.KeyValue.Update(ctx, key, value, rev)
	if err == nil {
		k.updates.Add(1)
	}
	if err == nil && k.loseUpdateAnswer.CompareAndSwap(true, false) {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return rev, err
}

// TestStateStoreTriesAgainWhenTheClusterLosesARequest checks that a read or
// a write the cluster loses costs one request's time, not the operation's,
// and that a write which landed although its answer was lost is not folded
// twice: the update reads it back and the report, at or below last_seq, is
// skipped.
func TestStateStoreTriesAgainWhenTheClusterLosesARequest(t *testing.T) {
	t.Parallel()
	b := setupState(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	report := func(seq uint64) breaker.FoldFunc {
		return func(cur domain.Breaker) (domain.Breaker, domain.Result) {
			return cur.Apply(domain.ReportInput(domain.Report{Node: "n", Successes: 1, At: at, Seq: seq}),
				domain.Env{Now: at, Config: domain.DefaultConfig()})
		}
	}
	_, _, err := b.store.Update(ctx, "ledger", report(1))
	require.NoError(t, err)

	kv := &lossyKV{KeyValue: b.top.Breakers}
	kv.loseRead.Store(true)
	kv.loseUpdateAnswer.Store(true)
	lossy := breaker.NewStateStore(kv, b.env.JS, "test-node", nil)
	opCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	got, _, err := lossy.Update(opCtx, "ledger", report(2))
	require.NoError(t, err)
	require.Less(t, time.Since(start), 9*time.Second, "two lost requests cost two attempts, not the operation")
	require.False(t, kv.loseRead.Load() || kv.loseUpdateAnswer.Load(), "both requests were lost once")
	require.Equal(t, int64(2), got.Window.Successes)
	require.Equal(t, uint64(2), got.LastSeq)

	stored, _, err := b.store.Get(ctx, "ledger")
	require.NoError(t, err)
	require.Equal(t, int64(2), stored.Window.Successes, "the report whose write landed is folded once")

	// A request that is never answered ends with the operation's context.
	kv.loseRead.Store(true)
	short, cancel2 := context.WithTimeout(ctx, time.Second)
	defer cancel2()
	_, _, err = lossy.Update(short, "ledger", report(3))
	require.ErrorIs(t, err, context.DeadlineExceeded)
}
