package e2e_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur"
	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// waitFor bounds every wait on the fleet (generous: the race detector and a
// cluster with a stopped node are slow).
const waitFor = 30 * time.Second

// clock is a clock shared by a worker and its clients, moved by the test.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// fleet is an embedded server (or cluster) with the topology created.
type fleet struct {
	js      jetstream.JetStream
	top     *topology.Topology
	connect func(tb testing.TB) *nats.Conn
}

func newFleet(tb testing.TB, js jetstream.JetStream, connect func(tb testing.TB) *nats.Conn, cfg topology.Config) *fleet {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	top, err := topology.Ensure(ctx, js, cfg)
	require.NoError(tb, err)
	return &fleet{js: js, top: top, connect: connect}
}

// singleNode is a fleet on one embedded server.
func singleNode(tb testing.TB, cfg topology.Config) *fleet {
	tb.Helper()
	env := testenv.NATS(tb)
	return newFleet(tb, env.JS, func(tb testing.TB) *nats.Conn { return env.Connect(tb) }, cfg)
}

// worker is a running breaker-worker on its own connection, with its own
// view of the fleet's config and governance.
type worker struct {
	*breaker.Worker
	view *fleetstate.View
}

// startWorker starts a worker serving half-open permits; it stops when the
// test ends. now is its clock (nil: time.Now).
func (f *fleet) startWorker(tb testing.TB, node string, now func() time.Time) *worker {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	nc := f.connect(tb)
	js, err := jetstream.New(nc)
	require.NoError(tb, err)
	top, err := topology.Ensure(ctx, js, f.top.Config) // buckets bound to this connection
	require.NoError(tb, err)
	view, err := fleetstate.Watch(ctx, js)
	require.NoError(tb, err)
	tb.Cleanup(view.Stop)
	w, err := breaker.New(js, breaker.Config{
		Topology: top, Node: node, Configs: view, Governance: view, Clock: now, Conn: nc,
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(tb, err)
	require.NoError(tb, w.Start(ctx))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return &worker{Worker: w, view: view}
}

// client connects an SDK client on a connection of its own; it is closed
// when the test ends.
func (f *fleet) client(tb testing.TB, node string, opts ...baldur.Option) *baldur.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	opts = append([]baldur.Option{baldur.WithNodeID(node), baldur.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	c, err := baldur.Connect(ctx, f.connect(tb), opts...)
	require.NoError(tb, err)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// setConfig stores svc's config and waits until every given worker applies it.
func (f *fleet) setConfig(tb testing.TB, svc, raw string, workers ...*worker) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, err := f.top.ConfigKV.Put(ctx, svc, []byte(raw))
	require.NoError(tb, err)
	want, err := domain.ResolveConfig(nil, []byte(raw))
	require.NoError(tb, err)
	for _, w := range workers {
		require.Eventually(tb, func() bool { return w.view.Config(svc) == want }, waitFor, time.Millisecond)
	}
}

// command publishes a breaker command for svc.
func (f *fleet) command(tb testing.TB, svc string, c events.BreakerCommand) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	msg, err := events.NewMsg(events.MustControlSubject(svc), events.NewEnvelopeRandomID(events.TypeControl, "e2e", time.Now()), c)
	require.NoError(tb, err)
	_, err = f.js.PublishMsg(ctx, msg)
	require.NoError(tb, err)
}

// state waits until svc's stored breaker satisfies ok and returns it.
func (f *fleet) state(tb testing.TB, svc string, ok func(domain.Breaker) bool) domain.Breaker {
	tb.Helper()
	store := breaker.NewStateStore(f.top.Breakers, f.js, "e2e", nil)
	var b domain.Breaker
	require.Eventually(tb, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		var err error
		b, _, err = store.Get(ctx, svc)
		return err == nil && ok(b)
	}, waitFor, 5*time.Millisecond, "breaker %s never reached the wanted state; last %+v", svc, b)
	return b
}

// transitions returns svc's transition events of kind stored so far.
func (f *fleet) transitions(tb testing.TB, svc string, kind domain.TransitionKind) []events.TransitionEvent {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	filter := fmt.Sprintf("baldur.event.breaker.%s.%s", svc, kind)
	// How many the stream holds, from its leader (which acked them): a
	// consumer placed on a follower may not have applied the latest yet,
	// so reading "what is there now" from it could come back short.
	s, err := f.js.Stream(ctx, topology.StreamEvents)
	require.NoError(tb, err)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	require.NoError(tb, err)
	want := int(info.State.Subjects[filter])
	c, err := f.js.OrderedConsumer(ctx, topology.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	require.NoError(tb, err)
	var out []events.TransitionEvent
	for len(out) < want {
		require.NoError(tb, ctx.Err(), "read %d of the %d %s events", len(out), want, filter)
		batch, err := c.Fetch(want-len(out), jetstream.FetchMaxWait(time.Second))
		require.NoError(tb, err)
		for m := range batch.Messages() {
			ev, err := events.DecodeTransitionEvent(m.Data())
			require.NoError(tb, err)
			out = append(out, ev)
		}
	}
	return out
}

func isState(s domain.State) func(domain.Breaker) bool {
	return func(b domain.Breaker) bool { return b.State == s && len(b.PendingEvents) == 0 }
}
