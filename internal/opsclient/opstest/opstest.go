// Package opstest runs a small real fleet for the tests of operator tools:
// an embedded NATS server with the topology, breaker-workers and a
// replay-worker on PostgreSQL, a service that answers replay deliveries, and
// helpers to put dead letters in the queue.
package opstest

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/auditanchor"
	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// WaitFor bounds every wait on the fleet (generous for the race detector).
const WaitFor = 30 * time.Second

// Fleet is an embedded NATS server with the fleet's topology.
type Fleet struct {
	// NATS is the server and a connection to it.
	NATS *testenv.NATSEnv
	// URL is the server's client URL.
	URL string
	// Topology holds the buckets, bound to NATS.Conn.
	Topology *topology.Topology
}

func ctx(tb testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), WaitFor)
	tb.Cleanup(cancel)
	return c
}

// NewFleet starts a server and creates the topology (breaker and replay).
func NewFleet(tb testing.TB) *Fleet {
	tb.Helper()
	env := testenv.NATS(tb)
	top, err := topology.Ensure(ctx(tb), env.JS, topology.Config{})
	require.NoError(tb, err)
	_, err = topology.EnsureReplay(ctx(tb), env.JS, topology.Config{})
	require.NoError(tb, err)
	return &Fleet{NATS: env, URL: env.URL, Topology: top}
}

// StartBreakerWorker starts a breaker-worker named node on a connection of
// its own; it stops when the test ends.
func (f *Fleet) StartBreakerWorker(tb testing.TB, node string) *breaker.Worker {
	tb.Helper()
	nc := f.NATS.Connect(tb)
	js, err := jetstream.New(nc)
	require.NoError(tb, err)
	top, err := topology.Ensure(ctx(tb), js, f.Topology.Config)
	require.NoError(tb, err)
	view, err := fleetstate.Watch(ctx(tb), js)
	require.NoError(tb, err)
	tb.Cleanup(view.Stop)
	w, err := breaker.New(js, breaker.Config{
		Topology: top, Node: node, Configs: view, Governance: view, Conn: nc,
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(tb, err)
	require.NoError(tb, w.Start(ctx(tb)))
	tb.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), WaitFor)
		defer cancel()
		_ = w.Stop(c)
	})
	return w
}

// Replay is a running replay-worker and its store.
type Replay struct {
	Worker *replay.Worker
	Store  *store.Store
	Pool   *pgxpool.Pool
	// DatabaseURL is the worker's database.
	DatabaseURL string
}

// StartReplayWorker starts a replay-worker (ingest, engine, DLQ endpoints,
// audit; no continuous drains) on a fresh PostgreSQL database; it stops when
// the test ends. The package's TestMain must call testenv.Main.
func (f *Fleet) StartReplayWorker(tb testing.TB, node string) *Replay {
	tb.Helper()
	dbURL := testenv.PostgresURL(tb)
	pool, err := pgxpool.New(ctx(tb), dbURL)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	nc := f.NATS.Connect(tb)
	js, err := jetstream.New(nc)
	require.NoError(tb, err)
	view, err := fleetstate.Watch(ctx(tb), js)
	require.NoError(tb, err)
	tb.Cleanup(view.Stop)
	cfg := replay.Config{NodeID: node, Trigger: replay.TriggerConfig{ContinuousEvery: -1}}.WithDefaults()
	st := store.New(pool, store.WithRetryPolicy(cfg.Retry), store.WithAuditKey(testenv.AuditKey),
		store.WithAuditAnchor(auditanchor.NewPublisher(js, slog.New(slog.DiscardHandler))))
	w, err := replay.New(cfg, replay.Deps{Store: st, NC: nc, JS: js, View: replay.FleetView(view), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(tb, err)
	require.NoError(tb, w.Start(ctx(tb)))
	tb.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), WaitFor)
		defer cancel()
		_ = w.Stop(c)
	})
	return &Replay{Worker: w, Store: st, Pool: pool, DatabaseURL: dbURL}
}

// DeadLetter publishes a dead letter for svc and waits until the
// replay-worker r has ingested it; it returns the entry's id.
func (f *Fleet) DeadLetter(tb testing.TB, r *Replay, svc, message string) string {
	tb.Helper()
	id := uuid.New()
	dl := events.DeadLetter{
		Domain: domain.FailureDomain("external_service"), FailureType: "timeout", Operation: "charge",
		Request: json.RawMessage(`{"amount":42}`), ErrorMessage: message,
	}
	msg, err := events.NewMsg(events.MustDLQSubject(svc), events.NewEnvelope(events.TypeDLQ, id, "opstest", time.Now()), dl)
	require.NoError(tb, err)
	_, err = f.NATS.JS.PublishMsg(ctx(tb), msg)
	require.NoError(tb, err)
	require.Eventually(tb, func() bool {
		_, err := r.Store.Get(context.Background(), id.String())
		return err == nil
	}, WaitFor, 5*time.Millisecond, "dead letter %s never ingested", id)
	return id.String()
}

// Service answers the replay deliveries of one service.
type Service struct {
	delivered atomic.Int64
}

// Delivered returns the number of deliveries so far.
func (s *Service) Delivered() int64 { return s.delivered.Load() }

// ServeReplay answers svc's replay deliveries with ok (or a non-retryable
// failure) until the test ends.
func (f *Fleet) ServeReplay(tb testing.TB, svc string, ok bool) *Service {
	tb.Helper()
	s := &Service{}
	nc := f.NATS.Connect(tb)
	reply := events.ReplayReply{OK: true}
	if !ok {
		reply = events.ReplayReply{Error: "still failing"}
	}
	body, err := json.Marshal(reply)
	require.NoError(tb, err)
	sub, err := nc.QueueSubscribe(events.MustReplaySubject(svc), events.ReplayQueueGroup, func(m *nats.Msg) {
		s.delivered.Add(1)
		_ = m.Respond(body)
	})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(tb, nc.Flush())
	return s
}
