package replay_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/telemetry"
)

// The rest of replay.Inserter: the bound's reads go to the store unchanged.

func (c *ingestCounter) LiveCounts(ctx context.Context, services []string) (map[string]store.LiveCount, error) {
	return c.next.LiveCounts(ctx, services)
}

func (c *ingestCounter) RecountLive(ctx context.Context, services []string, now time.Time) (map[string]int64, error) {
	return c.next.RecountLive(ctx, services, now)
}

func (c *ingestCounter) StoredEntries(ctx context.Context, entries []domain.DLQEntry) ([]string, error) {
	return c.next.StoredEntries(ctx, entries)
}

// boundSpy is an ingestCounter that counts the bound's reads.
type boundSpy struct {
	*ingestCounter

	mu              sync.Mutex
	reads, recounts int
}

func (s *boundSpy) LiveCounts(ctx context.Context, services []string) (map[string]store.LiveCount, error) {
	s.mu.Lock()
	s.reads++
	s.mu.Unlock()
	return s.ingestCounter.LiveCounts(ctx, services)
}

func (s *boundSpy) RecountLive(ctx context.Context, services []string, now time.Time) (map[string]int64, error) {
	s.mu.Lock()
	s.recounts += len(services)
	s.mu.Unlock()
	return s.ingestCounter.RecountLive(ctx, services, now)
}

// calls returns how many times the bound read the live counts and how many
// services it recounted.
func (s *boundSpy) calls() (reads, recounts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads, s.recounts
}

// boundClock is a settable clock for the ingest.
type boundClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *boundClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *boundClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// rejectedDLQ subscribes to the rejected dead-letter events.
func rejectedDLQ(t *testing.T, env *ingestEnv) <-chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 256)
	sub, err := env.nats.Conn.ChanSubscribe("baldur.event.rejected.dlq", ch)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, env.nats.Conn.Flush())
	return ch
}

// nextRejected returns the next rejected event.
func nextRejected(t *testing.T, ch <-chan *nats.Msg) events.Rejected {
	t.Helper()
	select {
	case m := <-ch:
		dm, err := events.Decode(m.Subject, m.Header, m.Data)
		require.NoError(t, err, "the rejected event follows the contract")
		return dm.Payload.(events.Rejected)
	case <-time.After(10 * time.Second):
		t.Fatal("no rejected event")
		return events.Rejected{}
	}
}

// settle replays n of the service's pending entries through the store
// (claimed and completed under a lease): they leave the live statuses.
func settle(t *testing.T, s *store.Store, svc string, n int, at time.Time) {
	t.Helper()
	ctx := context.Background()
	l, err := s.AcquireLease(ctx, svc, "test", time.Hour, at)
	require.NoError(t, err)
	claimed, err := s.ClaimBatch(ctx, svc, l.Token, n, at)
	require.NoError(t, err)
	require.Len(t, claimed, n)
	ids := make([]string, len(claimed))
	for i, e := range claimed {
		ids[i] = e.ID
	}
	done, err := s.CompleteBatch(ctx, ids, l.Token, at)
	require.NoError(t, err)
	require.Len(t, done, n)
	require.NoError(t, s.ReleaseLease(ctx, svc, l.Token, at))
}

// TestIngestBoundsPendingPerService: a service at its bound of live entries
// gets its new dead letters refused, each with a backlog_full event naming
// the service, the bound and the flag, terminated and counted; another
// service's dead letters in the same batch are stored; a redelivery of a
// stored one is a duplicate, not a refusal; once entries are replayed and
// the service has been recounted, new dead letters are stored again, up to
// the bound.
func TestIngestBoundsPendingPerService(t *testing.T) {
	t.Parallel()
	env := newIngestEnv(t)
	rejected := rejectedDLQ(t, env)
	clock := &boundClock{now: ingestT0.Add(time.Hour)}
	const bound = 5
	cfg := replay.IngestConfig{Batch: 100, Writers: 1, MaxPendingPerService: bound, PendingRecount: time.Minute}
	deps := replay.IngestDeps{Store: env.counted, JS: env.nats.JS, NodeID: "bound-test", Clock: clock.Now}

	// One batch: 8 for payments, 3 for ledger, interleaved.
	var payments []*nats.Msg
	for i := range 8 {
		m := ingestMsg(t, "payments", uuid.New(), ingestLetter(fmt.Sprint("p-", i)))
		payments = append(payments, m)
		ingestPublish(t, env.nats.JS, m)
		if i%3 == 0 {
			ingestPublish(t, env.nats.JS, ingestMsg(t, "ledger", uuid.New(), ingestLetter(fmt.Sprint("l-", i))))
		}
	}
	in := ingestStart(t, cfg, deps)
	env.counted.wait(t, bound+3, 10*time.Second)

	want := map[string]bool{}
	for _, m := range payments[bound:] {
		want[m.Header.Get(events.HeaderID)] = true
	}
	for range len(want) {
		r := nextRejected(t, rejected)
		require.True(t, want[r.CEID], "refused in stream order, after the first %d: %+v", bound, r)
		delete(want, r.CEID)
		require.Equal(t, replay.CodeBacklogFull, r.Code)
		require.Equal(t, events.RejectedDLQ, r.Kind)
		require.Equal(t, "baldur.dlq.payments", r.Subject)
		for _, s := range []string{`"payments"`, "5 live dead letters", "--ingest-max-pending-per-service=5", "$BALDUR_INGEST_MAX_PENDING_PER_SERVICE"} {
			require.Contains(t, r.Reason, s)
		}
	}
	for i, m := range payments {
		_, err := env.store.Get(context.Background(), m.Header.Get(events.HeaderID))
		if i < bound {
			require.NoError(t, err, "payments %d is stored", i)
		} else {
			require.ErrorIs(t, err, store.ErrNotFound, "payments %d is not stored", i)
		}
	}
	ingestDrained(t, env)
	require.Eventually(t, func() bool { return in.Stats().BacklogFull == 3 }, 5*time.Second, time.Millisecond)
	st := in.Stats()
	require.Equal(t, uint64(bound+3), st.Inserted, "the ledger's dead letters in the same batch are stored")
	require.Equal(t, uint64(3), st.BacklogFull)
	require.Zero(t, st.Rejected, "a refusal at the bound is not counted as malformed")
	require.Equal(t, uint64(11), st.Received)

	// A redelivery of a stored dead letter (the ack was lost) while at the
	// bound: a duplicate, acked, no event.
	again := ingestMsg(t, "payments", uuid.MustParse(payments[0].Header.Get(events.HeaderID)), ingestLetter("p-0"))
	again.Header.Del(jetstream.MsgIDHeader)
	ingestPublish(t, env.nats.JS, again)
	require.Eventually(t, func() bool { return in.Stats().Duplicates == 1 }, 10*time.Second, time.Millisecond,
		"the redelivery is acked as a duplicate")

	// Two entries replayed: room for two, but the service was counted less
	// than PendingRecount ago, so the next dead letter is still refused.
	settle(t, env.store, "payments", 2, clock.Now())
	early := ingestMsg(t, "payments", uuid.New(), ingestLetter("early"))
	ingestPublish(t, env.nats.JS, early)
	r := nextRejected(t, rejected)
	require.Equal(t, early.Header.Get(events.HeaderID), r.CEID)

	// After PendingRecount, the service is counted again: two are stored,
	// the third is refused.
	clock.Add(time.Minute)
	var late []string
	for i := range 3 {
		m := ingestMsg(t, "payments", uuid.New(), ingestLetter(fmt.Sprint("late-", i)))
		late = append(late, m.Header.Get(events.HeaderID))
		ingestPublish(t, env.nats.JS, m)
	}
	env.counted.wait(t, bound+3+2, 10*time.Second)
	r = nextRejected(t, rejected)
	require.Equal(t, late[2], r.CEID)
	ingestDrained(t, env)
	require.Eventually(t, func() bool {
		st := in.Stats()
		return st.BacklogFull == 5 && st.Duplicates == 1 && st.Inserted == bound+3+2
	}, 5*time.Second, time.Millisecond, "%+v", in.Stats())
	n, err := env.store.RecountLive(context.Background(), []string{"payments"}, clock.Now())
	require.NoError(t, err)
	require.Equal(t, int64(bound), n["payments"], "never more than the bound with one writer")
	select {
	case r := <-rejected:
		t.Fatalf("an unexpected rejected event: %s", r.Data)
	default:
	}
}

// TestIngestRecountsOldCounts: a service far from its bound is recounted
// once its count is MaxPendingRecountAge old, not on every batch.
func TestIngestRecountsOldCounts(t *testing.T) {
	t.Parallel()
	env := newIngestEnv(t)
	clock := &boundClock{now: ingestT0.Add(time.Hour)}
	spy := &boundSpy{ingestCounter: env.counted}
	ingestStart(t, replay.IngestConfig{Batch: 10, Writers: 1},
		replay.IngestDeps{Store: spy, JS: env.nats.JS, NodeID: "bound-test", Clock: clock.Now})
	publish := func(n int) {
		for range n {
			ingestPublish(t, env.nats.JS, ingestMsg(t, "payments", uuid.New(), ingestLetter("")))
		}
	}
	publish(1)
	env.counted.wait(t, 1, 10*time.Second)
	_, recounts := spy.calls()
	require.Equal(t, 1, recounts, "a service without a count is counted")

	publish(5)
	env.counted.wait(t, 6, 10*time.Second)
	_, recounts = spy.calls()
	require.Equal(t, 1, recounts, "a fresh count far from the bound is trusted")

	clock.Add(replay.MaxPendingRecountAge)
	publish(1)
	env.counted.wait(t, 7, 10*time.Second)
	_, recounts = spy.calls()
	require.Equal(t, 2, recounts, "an old count is made again")
	c, err := env.store.LiveCounts(context.Background(), []string{"payments"})
	require.NoError(t, err)
	require.Equal(t, int64(7), c["payments"].Live)
	require.True(t, c["payments"].RecountedAt.Equal(clock.Now()))
}

// TestIngestUnboundedReadsNoCounts: with UnboundedPending the ingest never
// reads a count and stores everything.
func TestIngestUnboundedReadsNoCounts(t *testing.T) {
	t.Parallel()
	env := newIngestEnv(t)
	spy := &boundSpy{ingestCounter: env.counted}
	in := ingestStart(t, replay.IngestConfig{MaxPendingPerService: replay.UnboundedPending},
		replay.IngestDeps{Store: spy, JS: env.nats.JS, NodeID: "bound-test"})
	for i := range 20 {
		ingestPublish(t, env.nats.JS, ingestMsg(t, "payments", uuid.New(), ingestLetter(fmt.Sprint("k-", i))))
	}
	env.counted.wait(t, 20, 10*time.Second)
	reads, recounts := spy.calls()
	require.Zero(t, reads)
	require.Zero(t, recounts)
	require.Zero(t, in.Stats().BacklogFull)
}

// TestIngestBoundSlack: two ingests (one writer each) flooding one service
// pass its bound by at most one batch, and every dead letter is either
// stored or refused with an event.
func TestIngestBoundSlack(t *testing.T) {
	t.Parallel()
	env := newIngestEnv(t)
	rejected := rejectedDLQ(t, env)
	const bound, batch, total = 50, 10, 200
	cfg := replay.IngestConfig{Batch: batch, Writers: 1, MaxPendingPerService: bound, MaxWait: 5 * time.Millisecond}
	a := ingestStart(t, cfg, replay.IngestDeps{Store: env.counted, JS: env.nats.JS, NodeID: "a"})
	b := ingestStart(t, cfg, replay.IngestDeps{Store: env.counted, JS: env.nats.JS, NodeID: "b"})
	for i := range total {
		if _, err := env.nats.JS.PublishMsgAsync(ingestMsg(t, "payments", uuid.New(), ingestLetter(fmt.Sprint("k-", i)))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-env.nats.JS.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("publishing timed out")
	}
	// Each refusal's event is published before the refusal is counted.
	require.Eventually(t, func() bool {
		sa, sb := a.Stats(), b.Stats()
		return sa.Inserted+sb.Inserted+sa.BacklogFull+sb.BacklogFull == total
	}, 30*time.Second, time.Millisecond, "every dead letter stored or refused")
	refused := map[string]bool{}
	for len(refused) < int(a.Stats().BacklogFull+b.Stats().BacklogFull) {
		r := nextRejected(t, rejected)
		require.Equal(t, replay.CodeBacklogFull, r.Code)
		refused[r.CEID] = true
	}
	ingestDrained(t, env)
	stored := a.Stats().Inserted + b.Stats().Inserted
	t.Logf("stored %d, refused %d (bound %d, batch %d, 2 writers)", stored, len(refused), bound, batch)
	require.GreaterOrEqual(t, stored, uint64(bound))
	require.LessOrEqual(t, stored, uint64(bound+batch), "one batch of slack per other writer")
	require.Len(t, refused, int(total-stored))
}

// TestIngestBoundMetric: backlog_full refusals are an outcome of
// baldur.dlq.ingested.
func TestIngestBoundMetric(t *testing.T) {
	t.Parallel()
	env := newIngestEnv(t)
	rejected := rejectedDLQ(t, env)
	cfg := replay.Config{NodeID: "metric", DisableReplay: true, DisableAPI: true, DisableAudit: true,
		Ingest: replay.IngestConfig{MaxPendingPerService: 1, MaxWait: 20 * time.Millisecond}}
	w, err := replay.New(cfg, replay.Deps{Store: env.store, NC: env.nats.Conn, JS: env.nats.JS})
	require.NoError(t, err)
	require.NoError(t, w.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, w.Stop(ctx))
	})
	reader := sdkmetric.NewManualReader()
	reg, err := w.RegisterMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = reg.Unregister() })

	for range 3 {
		ingestPublish(t, env.nats.JS, ingestMsg(t, "payments", uuid.New(), ingestLetter("")))
	}
	nextRejected(t, rejected)
	nextRejected(t, rejected)
	require.Eventually(t, func() bool {
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(context.Background(), &rm))
		got := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name != "baldur.dlq.ingested" {
					continue
				}
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					v, _ := dp.Attributes.Value(telemetry.AttrResult)
					got[v.AsString()] = dp.Value
				}
			}
		}
		return got["inserted"] == 1 && got[replay.CodeBacklogFull] == 2
	}, 5*time.Second, 5*time.Millisecond)
}

// TestIngestConfigBound: the bound's defaults and limits.
func TestIngestConfigBound(t *testing.T) {
	c := replay.IngestConfig{}.WithDefaults()
	require.Equal(t, int64(replay.DefaultMaxPendingPerService), c.MaxPendingPerService)
	require.Equal(t, replay.DefaultPendingRecount, c.PendingRecount)
	require.NoError(t, c.Validate())
	c.MaxPendingPerService = replay.UnboundedPending
	require.NoError(t, c.Validate())
	c.MaxPendingPerService = -2
	c.PendingRecount = time.Hour
	err := c.Validate()
	require.ErrorIs(t, err, replay.ErrInvalidConfig)
	for _, s := range []string{"max pending per service -2", "pending recount 1h0m0s"} {
		require.True(t, strings.Contains(err.Error(), s), err.Error())
	}
}

// ingestDrained waits until the work queue is empty and nothing was
// redelivered.
func ingestDrained(t *testing.T, env *ingestEnv) {
	t.Helper()
	require.Eventually(t, func() bool {
		msgs, pending, _ := ingestQueueDepth(t, env.nats.JS)
		return msgs == 0 && pending == 0
	}, 5*time.Second, 10*time.Millisecond, "nothing is left in the work queue")
	_, _, redelivered := ingestQueueDepth(t, env.nats.JS)
	require.Zero(t, redelivered, "nothing was redelivered")
}

// logLines is a log sink that keeps the lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

func (l *logLines) matching(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// TestIngestLogsRefusalsOncePerInterval: a service flooding at its bound
// writes one log line at once, then at most one per interval, which counts
// the refusals since the last.
func TestIngestLogsRefusalsOncePerInterval(t *testing.T) {
	t.Parallel()
	env := newIngestEnv(t)
	rejected := rejectedDLQ(t, env)
	clock := &boundClock{now: ingestT0.Add(time.Hour)}
	logs := &logLines{}
	in := ingestStart(t, replay.IngestConfig{Batch: 1, Writers: 1, MaxPendingPerService: 1},
		replay.IngestDeps{Store: env.counted, JS: env.nats.JS, NodeID: "bound-test", Clock: clock.Now,
			Logger: slog.New(slog.NewTextHandler(logs, nil))})
	publish := func(n int) {
		for range n {
			ingestPublish(t, env.nats.JS, ingestMsg(t, "payments", uuid.New(), ingestLetter("")))
		}
	}
	publish(4) // one stored, three refused in three batches
	for range 3 {
		nextRejected(t, rejected)
	}
	require.Eventually(t, func() bool { return in.Stats().BacklogFull == 3 }, 5*time.Second, time.Millisecond)
	const msg = "dead letters refused"
	lines := logs.matching(msg)
	require.Len(t, lines, 1, "one line for the first refusal")
	require.Contains(t, lines[0], "service=payments")
	require.Contains(t, lines[0], "refused=1")
	require.Contains(t, lines[0], "bound=1")

	clock.Add(10 * time.Second)
	publish(1)
	nextRejected(t, rejected)
	require.Eventually(t, func() bool { return len(logs.matching(msg)) == 2 }, 5*time.Second, time.Millisecond)
	require.Contains(t, logs.matching(msg)[1], "refused=3", "the two refused since the first line, and this one")
}
