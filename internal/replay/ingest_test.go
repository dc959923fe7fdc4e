package replay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// ingestT0 is the ce-time of the test dead letters.
var ingestT0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// ingestEnv is a NATS server with the replay topology and a migrated
// database.
type ingestEnv struct {
	nats  *testenv.NATSEnv
	pool  *pgxpool.Pool
	store *store.Store
	// counted wraps store and signals the entries it committed.
	counted *ingestCounter
}

func newIngestEnv(t testing.TB) *ingestEnv {
	t.Helper()
	env := &ingestEnv{nats: testenv.NATS(t), pool: testenv.Postgres(t)}
	ingestTopology(t, env.nats.JS)
	env.store = store.New(env.pool, store.WithAuditKey(testenv.AuditKey))
	env.counted = newIngestCounter(env.store)
	return env
}

func ingestTopology(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	_, err := topology.Ensure(ctx, js, topology.Config{Partitions: 1})
	require.NoError(t, err)
	_, err = topology.EnsureReplay(ctx, js, topology.Config{})
	require.NoError(t, err)
}

// start runs an Ingest over the counting store, stopped when the test ends.
func (env *ingestEnv) start(t testing.TB, cfg replay.IngestConfig) *replay.Ingest {
	t.Helper()
	return ingestStart(t, cfg, replay.IngestDeps{Store: env.counted, JS: env.nats.JS, NodeID: "ingest-test",
		Clock: func() time.Time { return ingestT0.Add(time.Hour) }})
}

func ingestStart(t testing.TB, cfg replay.IngestConfig, deps replay.IngestDeps) *replay.Ingest {
	t.Helper()
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 20 * time.Millisecond
	}
	in, err := replay.NewIngest(cfg, deps)
	require.NoError(t, err)
	require.NoError(t, in.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, in.Stop(ctx))
	})
	return in
}

// ingestCounter is a replay.Inserter over a store that counts what was
// committed and lets a test block or fail inserts.
type ingestCounter struct {
	next replay.Inserter

	mu       sync.Mutex
	rows     int
	calls    int
	waiters  []ingestWaiter
	intercep func(call int, entries []domain.DLQEntry) error // nil: insert
}

type ingestWaiter struct {
	n  int
	ch chan struct{}
}

func newIngestCounter(next replay.Inserter) *ingestCounter { return &ingestCounter{next: next} }

func (c *ingestCounter) InsertEntries(ctx context.Context, entries []domain.DLQEntry) (store.InsertResult, error) {
	c.mu.Lock()
	c.calls++
	call, hook := c.calls, c.intercep
	c.mu.Unlock()
	if hook != nil {
		if err := hook(call, entries); err != nil {
			return store.InsertResult{}, err
		}
	}
	res, err := c.next.InsertEntries(ctx, entries)
	if err != nil {
		return res, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rows += len(res.Inserted) + len(res.Duplicates)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if c.rows >= w.n {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
	return res, nil
}

// intercept runs hook, with the call's number and its entries, before every
// insert; an error fails it.
func (c *ingestCounter) intercept(hook func(call int, entries []domain.DLQEntry) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.intercep = hook
}

// wait blocks until n dead letters (inserted or duplicate) were committed.
func (c *ingestCounter) wait(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	c.mu.Lock()
	ch := make(chan struct{})
	if c.rows >= n {
		close(ch)
	} else {
		c.waiters = append(c.waiters, ingestWaiter{n: n, ch: ch})
	}
	c.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(timeout):
		c.mu.Lock()
		defer c.mu.Unlock()
		t.Fatalf("%d of %d dead letters committed after %s", c.rows, n, timeout)
	}
}

// ingestLetter is a valid dead letter.
func ingestLetter(key string) events.DeadLetter {
	return events.DeadLetter{
		Domain: domain.DomainExternalService, FailureType: "PG_TIMEOUT", Operation: "charge",
		IdempotencyKey: key, EntityType: "order", EntityID: "123",
		Request:      json.RawMessage(`{"order_id":"ord-1","amount":4200}`),
		ErrorCode:    "504",
		ErrorMessage: "upstream timeout",
	}
}

// ingestMsg builds the message of a dead letter for svc with ce-id id.
func ingestMsg(t testing.TB, svc string, id uuid.UUID, dl events.DeadLetter) *nats.Msg {
	t.Helper()
	m, err := events.NewMsg(events.MustDLQSubject(svc), events.NewEnvelope(events.TypeDLQ, id, "svc-node", ingestT0), dl)
	require.NoError(t, err)
	return m
}

func ingestPublish(t testing.TB, js jetstream.JetStream, m *nats.Msg) *jetstream.PubAck {
	t.Helper()
	ack, err := js.PublishMsg(context.Background(), m)
	require.NoError(t, err)
	return ack
}

// ingestQueueDepth returns the messages left in BALDUR_DLQ and the ingest
// consumer's unacked and redelivered counts.
func ingestQueueDepth(t testing.TB, js jetstream.JetStream) (msgs uint64, ackPending, redelivered int) {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, topology.StreamDLQ)
	require.NoError(t, err)
	si, err := s.Info(ctx)
	require.NoError(t, err)
	c, err := js.Consumer(ctx, topology.StreamDLQ, topology.ConsumerReplayIngest)
	require.NoError(t, err)
	ci, err := c.Info(ctx)
	require.NoError(t, err)
	return si.State.Msgs, ci.NumAckPending, ci.NumRedelivered
}

func TestIngestStoresDeadLetters(t *testing.T) {
	t.Parallel()
	env := newIngestEnv(t)
	in := env.start(t, replay.IngestConfig{})

	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	crit := ingestLetter("k-2")
	crit.Priority = domain.PriorityCritical
	three := 3
	crit.MaxRetries = &three
	ingestPublish(t, env.nats.JS, ingestMsg(t, "payments", ids[0], ingestLetter("k-1")))
	ingestPublish(t, env.nats.JS, ingestMsg(t, "payments", ids[1], crit))
	ingestPublish(t, env.nats.JS, ingestMsg(t, "ledger", ids[2], ingestLetter("")))
	env.counted.wait(t, 3, 10*time.Second)

	ctx := context.Background()
	e, err := env.store.Get(ctx, ids[0].String())
	require.NoError(t, err)
	require.Equal(t, "payments", e.Service, "the service is the subject's")
	require.Equal(t, domain.DLQPending, e.Status)
	require.Equal(t, "charge", e.Operation)
	require.Equal(t, "k-1", e.IdempotencyKey)
	require.Equal(t, domain.PriorityNormal, e.Priority, "priority defaults to normal")
	require.Equal(t, domain.DefaultMaxRetries, e.MaxRetries, "max_retries defaults to the seed's 2")
	require.JSONEq(t, `{"order_id":"ord-1","amount":4200}`, string(e.Request))
	require.Equal(t, "upstream timeout", e.ErrorMessage)
	require.True(t, e.CreatedAt.Equal(ingestT0), "created at ce-time, which is in the past: %s", e.CreatedAt)

	e, err = env.store.Get(ctx, ids[1].String())
	require.NoError(t, err)
	require.Equal(t, domain.PriorityCritical, e.Priority)
	require.Equal(t, 3, e.MaxRetries)

	e, err = env.store.Get(ctx, ids[2].String())
	require.NoError(t, err)
	require.Equal(t, "ledger", e.Service)

	require.Eventually(t, func() bool {
		msgs, pending, _ := ingestQueueDepth(t, env.nats.JS)
		return msgs == 0 && pending == 0
	}, 5*time.Second, 10*time.Millisecond, "every message acked and removed from the work queue")
	st := in.Stats()
	require.Equal(t, uint64(3), st.Received)
	require.Equal(t, uint64(3), st.Inserted)
	require.Zero(t, st.Rejected)
	require.False(t, st.Paused)
}

func TestIngestDuplicatesMakeOneRow(t *testing.T) {
	t.Parallel()
	env := newIngestEnv(t)
	in := env.start(t, replay.IngestConfig{})

	// The same ce-id twice: JetStream drops the second (Nats-Msg-Id = ce-id).
	id := uuid.New()
	ingestPublish(t, env.nats.JS, ingestMsg(t, "payments", id, ingestLetter("same-id")))
	require.True(t, ingestPublish(t, env.nats.JS, ingestMsg(t, "payments", id, ingestLetter("same-id"))).Duplicate)

	// The same ce-id without Nats-Msg-Id reaches the store twice, which
	// keeps one row.
	bare := uuid.New()
	for range 2 {
		m := ingestMsg(t, "payments", bare, ingestLetter("bare"))
		m.Header.Del(jetstream.MsgIDHeader)
		ingestPublish(t, env.nats.JS, m)
	}

	// The same idempotency key under different ids, for one service: one
	// live entry. Another service may use the same key.
	first, second, other := uuid.New(), uuid.New(), uuid.New()
	ingestPublish(t, env.nats.JS, ingestMsg(t, "payments", first, ingestLetter("order-123-charge")))
	ingestPublish(t, env.nats.JS, ingestMsg(t, "payments", second, ingestLetter("order-123-charge")))
	ingestPublish(t, env.nats.JS, ingestMsg(t, "ledger", other, ingestLetter("order-123-charge")))

	env.counted.wait(t, 6, 10*time.Second)
	ctx := context.Background()
	var n int
	require.NoError(t, env.pool.QueryRow(ctx, `SELECT count(*) FROM dlq_entries`).Scan(&n))
	require.Equal(t, 4, n, "one row each: same-id, bare, order-123-charge for payments and for ledger")
	_, err := env.store.Get(ctx, second.String())
	require.ErrorIs(t, err, store.ErrNotFound, "the second id with a live key is not stored")
	_, err = env.store.Get(ctx, other.String())
	require.NoError(t, err)

	st := in.Stats()
	require.Equal(t, uint64(4), st.Inserted)
	require.Equal(t, uint64(2), st.Duplicates, "bare's second copy and the second id with the same key")
	require.Eventually(t, func() bool {
		msgs, pending, _ := ingestQueueDepth(t, env.nats.JS)
		return msgs == 0 && pending == 0
	}, 5*time.Second, 10*time.Millisecond, "duplicates are acked too")
}

func TestIngestRejectsMalformed(t *testing.T) {
	t.Parallel()
	env := newIngestEnv(t)
	rejected := make(chan *nats.Msg, 16)
	sub, err := env.nats.Conn.ChanSubscribe("baldur.event.rejected.dlq", rejected)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, env.nats.Conn.Flush())
	in := env.start(t, replay.IngestConfig{})

	valid := ingestMsg(t, "payments", uuid.New(), ingestLetter("ok"))
	header := func(mut func(h nats.Header)) *nats.Msg {
		m := ingestMsg(t, "payments", uuid.New(), ingestLetter(""))
		mut(m.Header)
		return m
	}
	body := func(b string) *nats.Msg {
		m := ingestMsg(t, "payments", uuid.New(), ingestLetter(""))
		m.Data = []byte(b)
		return m
	}
	badSubject := ingestMsg(t, "payments", uuid.New(), ingestLetter(""))
	badSubject.Subject = "baldur.dlq.payments.extra"
	cases := []struct {
		name string
		msg  *nats.Msg
		code string
	}{
		{"invalid JSON", body(`{"domain":`), "bad_json"},
		{"unknown field", body(`{"domain":"custom","failure_type":"X","operation":"op","colour":"red"}`), "unknown_field"},
		{"missing operation", body(`{"domain":"custom","failure_type":"X"}`), "missing_field"},
		{"unknown domain", body(`{"domain":"weather","failure_type":"X","operation":"op"}`), "invalid_value"},
		{"no ce-id", header(func(h nats.Header) { h.Del(events.HeaderID); h.Del(jetstream.MsgIDHeader) }), "missing_header"},
		{"wrong ce-type", header(func(h nats.Header) { h.Set(events.HeaderType, string(events.TypeOutcome)) }), "type_mismatch"},
		{"malformed subject", badSubject, "invalid_subject"},
	}
	for _, c := range cases {
		ingestPublish(t, env.nats.JS, c.msg)
	}
	ingestPublish(t, env.nats.JS, valid)
	env.counted.wait(t, 1, 10*time.Second)

	got := map[string]events.Rejected{}
	for len(got) < len(cases) {
		select {
		case m := <-rejected:
			dm, err := events.Decode(m.Subject, m.Header, m.Data)
			require.NoError(t, err, "the rejected event follows the contract")
			r := dm.Payload.(events.Rejected)
			got[r.Subject+"|"+r.CEID] = r
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d rejected events", len(got), len(cases))
		}
	}
	for _, c := range cases {
		r, ok := got[c.msg.Subject+"|"+c.msg.Header.Get(events.HeaderID)]
		require.True(t, ok, "%s: a rejected event", c.name)
		require.Equal(t, events.RejectedDLQ, r.Kind, c.name)
		require.NotEmpty(t, r.Reason, c.name)
		require.Equal(t, len(c.msg.Data), r.Size, c.name)
		require.Equal(t, c.code, r.Code, "%s: %s", c.name, r.Reason)
	}

	require.Eventually(t, func() bool {
		msgs, pending, _ := ingestQueueDepth(t, env.nats.JS)
		return msgs == 0 && pending == 0
	}, 5*time.Second, 10*time.Millisecond, "terminated messages leave the work queue")
	_, _, redelivered := ingestQueueDepth(t, env.nats.JS)
	require.Zero(t, redelivered, "a rejected dead letter is not redelivered")
	st := in.Stats()
	require.Equal(t, uint64(len(cases)), st.Rejected)
	require.Equal(t, uint64(len(cases)+1), st.Received)
	require.Equal(t, uint64(1), st.Inserted)
}

func TestIngestAcksOnlyAfterCommit(t *testing.T) {
	t.Parallel()
	env := newIngestEnv(t)
	entered := make(chan int, 8)
	release := make(chan error)
	env.counted.intercept(func(call int, _ []domain.DLQEntry) error {
		entered <- call
		return <-release
	})
	const n = 5
	for i := range n {
		ingestPublish(t, env.nats.JS, ingestMsg(t, "payments", uuid.New(), ingestLetter(fmt.Sprint("k-", i))))
	}
	// Published before the start: the first fetch takes all of them.
	in := env.start(t, replay.IngestConfig{Batch: 10, Writers: 1, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	ingestEntered(t, entered)
	msgs, pending, _ := ingestQueueDepth(t, env.nats.JS)
	require.Equal(t, uint64(n), msgs, "nothing acked before the insert commits")
	require.Equal(t, n, pending, "the whole batch is held by the insert")

	// A failing insert acks nothing, pauses ingest and is retried.
	release <- errors.New("connection refused")
	ingestEntered(t, entered)
	require.True(t, in.Stats().Paused)
	require.Equal(t, uint64(1), in.Stats().StoreErrors)
	msgs, _, _ = ingestQueueDepth(t, env.nats.JS)
	require.Equal(t, uint64(n), msgs, "a failed insert acks nothing")

	// The retry commits, then everything is acked.
	env.counted.intercept(nil)
	release <- nil
	env.counted.wait(t, n, 10*time.Second)
	require.Eventually(t, func() bool {
		msgs, pending, _ := ingestQueueDepth(t, env.nats.JS)
		return msgs == 0 && pending == 0
	}, 5*time.Second, 10*time.Millisecond)
	require.False(t, in.Stats().Paused, "resumed after a successful insert")
	require.Equal(t, uint64(n), in.Stats().Inserted)
}

func ingestEntered(t *testing.T, entered <-chan int) {
	t.Helper()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no insert attempted")
	}
}

func TestIngestWorkersShareTheQueue(t *testing.T) {
	t.Parallel()
	env := newIngestEnv(t)
	deps := replay.IngestDeps{Store: env.counted, JS: env.nats.JS, NodeID: "a"}
	a := ingestStart(t, replay.IngestConfig{Batch: 50}, deps)
	deps.NodeID = "b"
	deps.JS = ingestJS(t, env.nats.Connect(t))
	b := ingestStart(t, replay.IngestConfig{Batch: 50}, deps)

	const n = 2000
	ingestPublishMany(t, env.nats.JS, "payments", n)
	env.counted.wait(t, n, 30*time.Second)

	var rows int
	require.NoError(t, env.pool.QueryRow(context.Background(), `SELECT count(*) FROM dlq_entries`).Scan(&rows))
	require.Equal(t, n, rows)
	// The stats count an insert after the store returns: wait for them.
	require.Eventually(t, func() bool { return a.Stats().Inserted+b.Stats().Inserted >= n }, 5*time.Second, time.Millisecond)
	sa, sb := a.Stats(), b.Stats()
	require.Equal(t, uint64(n), sa.Inserted+sb.Inserted, "each dead letter inserted by exactly one worker")
	require.Zero(t, sa.Duplicates+sb.Duplicates, "no message went to both workers")
	require.Positive(t, sa.Inserted, "worker a took part")
	require.Positive(t, sb.Inserted, "worker b took part")
}

func TestIngestStopHandsBackHeldBatches(t *testing.T) {
	t.Parallel()
	env := newIngestEnv(t)
	env.counted.intercept(func(int, []domain.DLQEntry) error { return errors.New("database is down") })
	in, err := replay.NewIngest(replay.IngestConfig{MaxWait: 10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
		replay.IngestDeps{Store: env.counted, JS: env.nats.JS})
	require.NoError(t, err)
	require.NoError(t, in.Start(context.Background()))
	require.ErrorIs(t, in.Start(context.Background()), replay.ErrIngestRunning)

	ingestPublishMany(t, env.nats.JS, "payments", 20)
	require.Eventually(t, func() bool { return in.Stats().StoreErrors > 2 }, 10*time.Second, 5*time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace: hand back at once
	require.NoError(t, in.Stop(ctx))
	require.NoError(t, in.Stop(ctx), "Stop twice")
	msgs, _, _ := ingestQueueDepth(t, env.nats.JS)
	require.Equal(t, uint64(20), msgs, "none acked")

	// They were handed back (NAK): another worker gets them at once, long
	// before the consumer's ack wait would have redelivered them.
	env.counted.intercept(nil)
	ingestStart(t, replay.IngestConfig{}, replay.IngestDeps{Store: env.counted, JS: env.nats.JS})
	env.counted.wait(t, 20, topology.ReplayIngestAckWait/3)
}

func TestNewIngestRefusesBadInput(t *testing.T) {
	t.Parallel()
	_, err := replay.NewIngest(replay.IngestConfig{}, replay.IngestDeps{})
	require.ErrorIs(t, err, replay.ErrIngestDeps)
	_, err = replay.NewIngest(replay.IngestConfig{Batch: -1, Writers: 100}, replay.IngestDeps{})
	require.ErrorIs(t, err, replay.ErrInvalidConfig)
	require.ErrorContains(t, err, "ingest batch -1")
	require.ErrorContains(t, err, "ingest writers 100")
}

// ingestPublishMany publishes n valid dead letters for svc asynchronously
// and waits for their acks.
func ingestPublishMany(t testing.TB, js jetstream.JetStream, svc string, n int) {
	t.Helper()
	for i := range n {
		id := uuid.New()
		m := ingestMsg(t, svc, id, ingestLetter("key-"+id.String()))
		if _, err := js.PublishMsgAsync(m); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("publishing dead letters timed out")
	}
}

func ingestJS(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}
