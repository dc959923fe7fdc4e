package breaker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

var permitT0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// permitConfig is a fixed ConfigSource and GovernanceSource.
type permitConfig struct {
	cfg domain.Config
	gov domain.Governance
}

func (p permitConfig) Config(string) domain.Config   { return p.cfg }
func (p permitConfig) Governance() domain.Governance { return p.gov }
func permitClock(at time.Time) func() time.Time      { return func() time.Time { return at } }
func permitDefaults() permitConfig                   { return permitConfig{cfg: domain.DefaultConfig()} }

// permitFleet is a server (or cluster) with the topology, and a way to open
// more connections.
type permitFleet struct {
	js      jetstream.JetStream
	connect func(t testing.TB) *nats.Conn
}

func newPermitFleet(t *testing.T, nodes int) permitFleet {
	t.Helper()
	ctx := context.Background()
	if nodes == 1 {
		env := testenv.NATS(t)
		_, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 1})
		require.NoError(t, err)
		return permitFleet{js: env.JS, connect: func(t testing.TB) *nats.Conn { return env.Connect(t) }}
	}
	env := testenv.NATSCluster(t, nodes)
	_, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 1, Replicas: 3})
	require.NoError(t, err)
	return permitFleet{js: env.JS, connect: func(t testing.TB) *nats.Conn { return env.Connect(t) }}
}

// store returns a StateStore on connection nc.
func permitStore(t testing.TB, nc *nats.Conn, node string) *breaker.StateStore {
	t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kv, err := js.KeyValue(context.Background(), topology.BucketBreakers)
	require.NoError(t, err)
	return breaker.NewStateStore(kv, js, node, nil)
}

// startPermitServer starts a permit server on its own connection.
func startPermitServer(t testing.TB, f permitFleet, node string, src permitConfig, opts ...breaker.PermitOption) *breaker.PermitServer {
	t.Helper()
	nc := f.connect(t)
	opts = append([]breaker.PermitOption{breaker.WithPermitSource(node)}, opts...)
	s, err := breaker.NewPermitServer(nc, permitStore(t, nc, node), src, src, opts...)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(s.Stop)
	return s
}

// tripBreaker opens svc's breaker by failures at permitT0 (recovery_at one
// minute later).
func tripBreaker(t testing.TB, store *breaker.StateStore, svc string) {
	t.Helper()
	b, res, err := store.Update(context.Background(), svc, func(b domain.Breaker) (domain.Breaker, domain.Result) {
		return b.Apply(domain.ReportInput(domain.Report{Node: "n1", Failures: 10, TrailingFailures: 10}),
			domain.Env{Now: permitT0, Config: domain.DefaultConfig()})
	})
	require.NoError(t, err)
	require.Len(t, res.Transitions, 1)
	require.Equal(t, domain.StateOpen, b.State)
}

func askPermit(ctx context.Context, nc *nats.Conn, svc, node string) (events.PermitReply, error) {
	m, err := nc.RequestWithContext(ctx, events.MustPermitSubject(svc), []byte(fmt.Sprintf(`{"node":%q}`, node)))
	if err != nil {
		return events.PermitReply{}, err
	}
	return events.DecodePermitReply(m.Data)
}

// streamMsgs returns the messages of BALDUR_EVENTS on subject.
func streamMsgs(t testing.TB, js jetstream.JetStream, subject string) []jetstream.Msg {
	t.Helper()
	ctx := context.Background()
	c, err := js.OrderedConsumer(ctx, topology.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	require.NoError(t, err)
	info, err := c.Info(ctx)
	require.NoError(t, err)
	if info.NumPending == 0 {
		return nil
	}
	batch, err := c.Fetch(int(info.NumPending), jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	return out
}

func TestPermitServerGrantsExactlyHalfOpenMaxCalls(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		nodes int
	}{
		{"single node", 1},
		{"three-node cluster", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.nodes > 1 && testing.Short() {
				t.Skip("cluster variant skipped in -short")
			}
			f := newPermitFleet(t, tc.nodes)
			tripBreaker(t, permitStore(t, f.connect(t), "seed"), "payments")

			past := permitClock(permitT0.Add(2 * time.Minute)) // after recovery_at
			servers := make([]*breaker.PermitServer, 3)
			for i := range servers {
				servers[i] = startPermitServer(t, f, fmt.Sprintf("worker-%d", i), permitDefaults(), breaker.WithPermitClock(past))
			}
			clients := []*nats.Conn{f.connect(t), f.connect(t), f.connect(t)}

			const callers = 50
			replies := make([]events.PermitReply, callers)
			errs := make([]error, callers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					<-start
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					replies[i], errs[i] = askPermit(ctx, clients[i%len(clients)], "payments", fmt.Sprintf("client-%d", i))
				})
			}
			close(start)
			wg.Wait()

			granted := 0
			for i := range callers {
				require.NoError(t, errs[i], "caller %d", i)
				require.Equal(t, domain.StateHalfOpen, replies[i].State, "caller %d", i)
				require.Equal(t, uint64(2), replies[i].Generation, "caller %d", i)
				if replies[i].Granted {
					granted++
				}
			}
			require.Equal(t, domain.DefaultConfig().HalfOpenMaxCalls, granted, "exactly half_open_max_calls permits fleet-wide")
			var served, grantedByServers uint64
			for _, s := range servers {
				served += s.Stats().Requests
				grantedByServers += s.Stats().Granted
			}
			require.Equal(t, uint64(callers), served)
			require.Equal(t, uint64(granted), grantedByServers)

			b, _, err := permitStore(t, clients[0], "check").Get(context.Background(), "payments")
			require.NoError(t, err)
			require.Equal(t, domain.StateHalfOpen, b.State)
			require.Equal(t, domain.HalfOpen{Permits: 3, Issued: 3, StartedAt: permitT0.Add(2 * time.Minute)}, b.HalfOpen)
			require.Empty(t, b.PendingEvents)

			// The publish was acked by the stream's leader; a consumer on a
			// follower may see it a moment later.
			var halfOpened []jetstream.Msg
			require.Eventually(t, func() bool {
				halfOpened = streamMsgs(t, f.js, "baldur.event.breaker.payments.half_opened")
				return len(halfOpened) >= 1
			}, 10*time.Second, 50*time.Millisecond, "the half_opened transition is published")
			require.Len(t, halfOpened, 1, "the half_opened transition is published once")
			require.Equal(t, events.TransitionMsgID("payments", 2), halfOpened[0].Headers().Get(jetstream.MsgIDHeader))
			ev, err := events.DecodeTransitionEvent(halfOpened[0].Data())
			require.NoError(t, err)
			require.Equal(t, domain.TriggerRecoveryTimeout, ev.Trigger)
		})
	}
}

func TestPermitServerAnswersByState(t *testing.T) {
	t.Parallel()
	f := newPermitFleet(t, 1)
	nc := f.connect(t)
	store := permitStore(t, nc, "seed")
	startPermitServer(t, f, "worker", permitDefaults(), breaker.WithPermitClock(permitClock(permitT0.Add(30*time.Second))))
	ctx := context.Background()

	// No breaker yet: closed, granted, nothing written.
	r, err := askPermit(ctx, nc, "search", "n1")
	require.NoError(t, err)
	require.Equal(t, events.PermitReply{Granted: true, State: domain.StateClosed}, r)
	_, rev, err := store.Get(ctx, "search")
	require.NoError(t, err)
	require.Zero(t, rev, "a closed breaker's permit writes nothing")

	// OPEN before recovery_at: refused, state unchanged.
	tripBreaker(t, store, "payments")
	r, err = askPermit(ctx, nc, "payments", "n1")
	require.NoError(t, err)
	require.Equal(t, events.PermitReply{Granted: false, State: domain.StateOpen, Generation: 1}, r)
}

func TestPermitServerRejectsMalformedRequests(t *testing.T) {
	t.Parallel()
	f := newPermitFleet(t, 1)
	nc := f.connect(t)
	s := startPermitServer(t, f, "worker-1", permitDefaults(), breaker.WithPermitClock(permitClock(permitT0)))
	ctx := context.Background()

	cases := []struct {
		name, subject, body, wantReason string
	}{
		{"invalid JSON", "baldur.permit.payments", `{"node":`, "permit request"},
		{"unknown field", "baldur.permit.payments", `{"node":"n1","extra":true}`, "extra"},
		{"missing node", "baldur.permit.payments", `{}`, "node"},
		{"invalid service", "baldur.permit.-payments", `{"node":"n1"}`, "-payments"},
	}
	for _, tc := range cases {
		m, err := nc.RequestWithContext(ctx, tc.subject, []byte(tc.body))
		require.NoError(t, err, tc.name)
		require.JSONEq(t, `{"granted":false}`, string(m.Data), tc.name)
	}
	// A publish without a reply subject is rejected too, and not answered.
	require.NoError(t, nc.Publish("baldur.permit.payments", []byte(`{"node":"n1"}`)))
	require.NoError(t, nc.Flush())

	// The server still serves.
	r, err := askPermit(ctx, nc, "payments", "n1")
	require.NoError(t, err)
	require.True(t, r.Granted)

	// The request without a reply may still be in hand on another subscription.
	require.Eventually(t, func() bool { return s.Stats().Rejected == 5 }, 10*time.Second, time.Millisecond)
	require.Equal(t, breaker.PermitStats{Requests: 6, Granted: 1, Rejected: 5}, s.Stats())
	rejected := streamMsgs(t, f.js, "baldur.event.rejected.permit")
	require.Len(t, rejected, 5)
	// Requests are handled concurrently: the events come in any order.
	var got []events.Rejected
	for _, m := range rejected {
		msg, err := events.Decode(m.Subject(), m.Headers(), m.Data())
		require.NoError(t, err)
		rej, ok := msg.Payload.(events.Rejected)
		require.True(t, ok, "%T", msg.Payload)
		require.Equal(t, events.RejectedPermit, rej.Kind)
		require.Equal(t, "worker-1", msg.Envelope.Source)
		got = append(got, rej)
	}
	want := append(cases, struct{ name, subject, body, wantReason string }{
		"no reply subject", "baldur.permit.payments", "", breaker.ErrPermitNoReply.Error()})
	for _, tc := range want {
		require.True(t, slices.ContainsFunc(got, func(r events.Rejected) bool {
			return r.Subject == tc.subject && strings.Contains(r.Reason, tc.wantReason)
		}), "%s: no rejected event on %s with %q in %+v", tc.name, tc.subject, tc.wantReason, got)
	}
}

func TestPermitServerStop(t *testing.T) {
	t.Parallel()
	f := newPermitFleet(t, 1)
	nc := f.connect(t)
	s := startPermitServer(t, f, "worker", permitDefaults())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := askPermit(ctx, nc, "payments", "n1")
	require.NoError(t, err)
	s.Stop()
	s.Stop()
	_, err = askPermit(ctx, nc, "payments", "n1")
	require.ErrorIs(t, err, nats.ErrNoResponders)
	require.Error(t, s.Start(ctx), "a server starts once")
}
