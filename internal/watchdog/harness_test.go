package watchdog_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
	"github.com/baldurfleet/baldur/internal/watchdog"
)

// TestMain (testenv.Main) is in budget_test.go.

// clock is a controllable clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) { l.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// harness is one test's fleet: an embedded NATS server, a fresh database, a
// fleet view and the controlled clock.
type harness struct {
	t     *testing.T
	nats  *testenv.NATSEnv
	js    jetstream.JetStream
	top   *topology.Topology
	view  *fleetstate.View
	store *store.Store
	clk   *clock
}

func newHarness(t *testing.T, leaseTTL time.Duration) *harness {
	t.Helper()
	env := testenv.NATS(t)
	ctx := context.Background()
	top, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 2, LeaseTTL: leaseTTL, Storage: jetstream.MemoryStorage})
	require.NoError(t, err)
	view, err := fleetstate.Watch(ctx, env.JS)
	require.NoError(t, err)
	t.Cleanup(view.Stop)
	clk := newClock()
	return &harness{t: t, nats: env, js: env.JS, top: top, view: view, clk: clk,
		store: store.New(testenv.Postgres(t), store.WithClock(clk.Now), store.WithAuditKey(testenv.AuditKey))}
}

// startBreakerWorker runs a real breaker-worker on the harness's clock.
func (h *harness) startBreakerWorker() *nats.Conn {
	t := h.t
	nc := h.nats.Connect(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	top, err := topology.Ensure(context.Background(), js, h.top.Config)
	require.NoError(t, err)
	w, err := breaker.New(js, breaker.Config{Topology: top, Node: "bw-1", Configs: h.view, Governance: h.view,
		Clock: h.clk.Now, Conn: nc, Logger: logger(t)})
	require.NoError(t, err)
	require.NoError(t, w.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return nc
}

// startWatchdog starts a watchdog on its own connection; its loop never
// ticks by itself unless tick is set, tests call Tick.
func (h *harness) startWatchdog(node string, cfg watchdog.Config, duties ...watchdog.Duty) *watchdog.Watchdog {
	t := h.t
	nc := h.nats.Connect(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	top, err := topology.Ensure(context.Background(), js, h.top.Config)
	require.NoError(t, err)
	cfg.Node = node
	if cfg.Tick == 0 {
		cfg.Tick = time.Hour
	}
	if cfg.Clock == nil {
		cfg.Clock = h.clk.Now
	}
	cfg.Logger = logger(t)
	w, err := watchdog.New(cfg, watchdog.Deps{JS: js, Topology: top, Store: h.store, Configs: h.view, Duties: duties})
	require.NoError(t, err)
	require.NoError(t, w.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w
}

// leader starts a watchdog and waits until it holds the lease.
func (h *harness) leader(cfg watchdog.Config) *watchdog.Watchdog {
	w := h.startWatchdog("wd-1", cfg)
	require.Eventually(h.t, w.IsLeader, 10*time.Second, 5*time.Millisecond)
	return w
}

func (h *harness) publish(subject string, typ events.Type, payload any) {
	h.t.Helper()
	msg, err := events.NewMsg(subject, events.NewEnvelopeRandomID(typ, "test", h.clk.Now()), payload)
	require.NoError(h.t, err)
	_, err = h.js.PublishMsg(context.Background(), msg)
	require.NoError(h.t, err)
}

func (h *harness) command(svc string, c events.BreakerCommand) {
	h.publish(events.MustControlSubject(svc), events.TypeControl, c)
}

// trip opens svc's breaker with ten failures.
func (h *harness) trip(svc string) domain.Breaker {
	h.publish(events.MustOutcomeSubject(svc), events.TypeOutcome, events.OutcomeReport{Failures: 10, TrailingFailures: 10})
	return h.breaker(svc, func(b domain.Breaker) bool { return b.State == domain.StateOpen })
}

// breaker waits until svc's stored breaker satisfies ok, as the watchdog's
// index and the view see it, and returns it.
func (h *harness) breaker(svc string, ok func(domain.Breaker) bool) domain.Breaker {
	h.t.Helper()
	var b domain.Breaker
	require.Eventually(h.t, func() bool {
		e, err := h.top.Breakers.Get(context.Background(), svc)
		if err != nil {
			return false
		}
		b = domain.Breaker{}
		return json.Unmarshal(e.Value(), &b) == nil && ok(b)
	}, 10*time.Second, 5*time.Millisecond, "breaker %s never reached the wanted state; last %+v", svc, b)
	return b
}

// event waits for the first event on subject that satisfies ok.
func event[T any](h *harness, subject string, ok func(T) bool) T {
	h.t.Helper()
	var found T
	require.Eventually(h.t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := h.js.OrderedConsumer(ctx, topology.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
		if err != nil {
			return false
		}
		for {
			msg, err := c.Next(jetstream.FetchMaxWait(200 * time.Millisecond))
			if err != nil {
				return false
			}
			m, err := events.Decode(msg.Subject(), msg.Headers(), msg.Data())
			require.NoError(h.t, err)
			if v, isT := m.Payload.(T); isT && ok(v) {
				found = v
				return true
			}
		}
	}, 10*time.Second, 20*time.Millisecond, "no matching event on %s", subject)
	return found
}

func transition(trigger domain.Trigger) func(events.TransitionEvent) bool {
	return func(e events.TransitionEvent) bool { return e.Trigger == trigger }
}
