package baldur_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

const waitFor = 10 * time.Second

// fleet is an embedded server with the topology created.
type fleet struct {
	env *testenv.NATSEnv
	top *topology.Topology
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	env := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	top, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 4, Storage: jetstream.MemoryStorage})
	require.NoError(t, err)
	return &fleet{env: env, top: top}
}

// connect returns a client on a connection of its own, closed when the test
// ends.
func (f *fleet) connect(t *testing.T, opts ...baldur.Option) *baldur.Client {
	t.Helper()
	return connectOn(t, f.env.Connect(t), opts...)
}

func connectOn(t *testing.T, nc *nats.Conn, opts ...baldur.Option) *baldur.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := baldur.Connect(ctx, nc, append([]baldur.Option{baldur.WithNodeID("node-a")}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// putState writes a breaker value into baldur_breakers.
func (f *fleet) putState(t *testing.T, svc string, state, mode string, gen int, recoveryAt time.Time) {
	t.Helper()
	v := map[string]any{"service": svc, "state": state, "mode": mode, "generation": gen}
	if !recoveryAt.IsZero() {
		v["recovery_at"] = recoveryAt.UTC().Format(time.RFC3339Nano)
	}
	body, err := json.Marshal(v)
	require.NoError(t, err)
	_, err = f.top.Breakers.Put(context.Background(), svc, body)
	require.NoError(t, err)
}

// waitGeneration waits until c's copy of svc's breaker has generation gen.
func waitGeneration(t *testing.T, c *baldur.Client, f *fleet, svc string, gen uint64) {
	t.Helper()
	require.Eventually(t, func() bool { return c.Generation(svc) == gen }, waitFor, time.Millisecond)
}

// fakeClock is a settable clock.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// report is an outcome report read back from BALDUR_INPUT.
type report struct {
	Service string
	Source  string
	ID      string
	events.OutcomeReport
}

// readReports reads every outcome report in BALDUR_INPUT until there are at
// least n, or fails after waitFor.
func (f *fleet) readReports(t *testing.T, n int) []report {
	t.Helper()
	return readReportsJS(t, f.env.JS, n)
}

func readReportsJS(t *testing.T, js jetstream.JetStream, n int) []report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var out []report
	for {
		out = out[:0]
		cons, err := js.OrderedConsumer(ctx, topology.StreamInput, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"baldur.in.*.outcome.>"}})
		require.NoError(t, err)
		info, err := cons.Info(ctx)
		require.NoError(t, err)
		pending := int(info.NumPending)
		if pending > 0 {
			batch, err := cons.Fetch(pending, jetstream.FetchMaxWait(time.Second))
			require.NoError(t, err)
			for m := range batch.Messages() {
				msg, err := events.Decode(topology.OriginalSubject(m.Subject()), m.Headers(), m.Data())
				require.NoError(t, err)
				out = append(out, report{Service: msg.Subject.Service, Source: msg.Envelope.Source, ID: msg.Envelope.ID,
					OutcomeReport: msg.Payload.(events.OutcomeReport)})
			}
		}
		if len(out) >= n {
			return out
		}
		select {
		case <-ctx.Done():
			t.Fatalf("want %d outcome reports, have %d", n, len(out))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sum adds up the reports of svc.
func sum(rs []report, svc string) (s events.OutcomeReport) {
	for _, r := range rs {
		if r.Service != svc {
			continue
		}
		s.Successes += r.Successes
		s.Failures += r.Failures
		s.SlowCalls += r.SlowCalls
		for k, v := range r.FailureTypes {
			if s.FailureTypes == nil {
				s.FailureTypes = map[string]int64{}
			}
			s.FailureTypes[k] += v
		}
	}
	return s
}

// permitServer answers baldur.permit.<svc>, granting the first grants
// requests.
func permitServer(t *testing.T, nc *nats.Conn, svc string, grants int64) *atomic.Int64 {
	t.Helper()
	var asked atomic.Int64
	sub, err := nc.Subscribe(events.MustPermitSubject(svc), func(m *nats.Msg) {
		req, err := events.DecodePermitRequest(m.Data)
		if err != nil || req.Node == "" {
			_ = m.Respond([]byte(`{"granted":false,"state":"half_open","generation":0}`))
			return
		}
		n := asked.Add(1)
		body, _ := json.Marshal(events.PermitReply{Granted: n <= grants, State: "half_open", Generation: 2})
		_ = m.Respond(body)
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return &asked
}

func TestConnectNeedsTheTopology(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, err := baldur.Connect(ctx, env.Conn)
	require.Error(t, err)
	_, err = baldur.Connect(ctx, nil)
	require.ErrorIs(t, err, baldur.ErrInvalidOption)
	_, err = baldur.Connect(ctx, env.Conn, baldur.WithFlushInterval(0))
	require.ErrorIs(t, err, baldur.ErrInvalidOption)
	_, err = baldur.Connect(ctx, env.Conn, baldur.WithNodeID(""))
	require.ErrorIs(t, err, baldur.ErrInvalidOption)
}

func TestAllowFollowsTheFleetState(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	clock := newFakeClock(time.Date(2026, 3, 14, 15, 0, 0, 0, time.UTC))
	c := f.connect(t, baldur.WithClock(clock.Now))
	ctx := context.Background()
	const svc = "payments"

	// No state yet: closed.
	require.True(t, c.Allow(svc))
	_, known := c.State(svc)
	require.False(t, known)

	// Open until recovery_at: refused without asking.
	asked := permitServer(t, f.env.Conn, svc, 1)
	f.putState(t, svc, "open", "auto", 1, clock.Now().Add(time.Minute))
	waitGeneration(t, c, f, svc, 1)
	st, known := c.State(svc)
	require.True(t, known)
	require.Equal(t, baldur.StateOpen, st)
	require.False(t, c.Allow(svc))
	err := c.Execute(ctx, svc, func(context.Context) error { return nil })
	require.ErrorIs(t, err, baldur.ErrOpen)
	require.True(t, baldur.IsRefusal(err))
	require.Zero(t, asked.Load())

	// Past recovery_at: one permit granted, then refused, and the refusal
	// is remembered until the state changes.
	clock.Advance(2 * time.Minute)
	require.True(t, c.Allow(svc))
	require.False(t, c.Allow(svc))
	require.Equal(t, int64(2), asked.Load())
	require.False(t, c.Allow(svc))
	require.Equal(t, int64(2), asked.Load(), "a refusal at the same revision is not asked again")
	require.ErrorIs(t, c.Execute(ctx, svc, func(context.Context) error { return nil }), baldur.ErrNoPermit)

	// Half-open at a new revision: asks again.
	f.putState(t, svc, "half_open", "auto", 2, time.Time{})
	waitGeneration(t, c, f, svc, 2)
	require.False(t, c.Allow(svc))
	require.Equal(t, int64(3), asked.Load())

	// Modes.
	for gen, tc := range []struct {
		state, mode string
		allow       bool
	}{
		{"open", "forced_open", false},
		{"closed", "forced_closed", true},
		{"open", "disabled", true},
		{"open", "metrics_only", true},
		{"closed", "auto", true},
	} {
		f.putState(t, svc, tc.state, tc.mode, gen+3, clock.Now().Add(time.Hour))
		waitGeneration(t, c, f, svc, uint64(gen+3))
		require.Equal(t, tc.allow, c.Allow(svc), "%s/%s", tc.state, tc.mode)
	}
	st, _ = c.State(svc)
	require.Equal(t, baldur.StateClosed, st)
	stats := c.Stats()
	require.Equal(t, uint64(3), stats.PermitRequests)
	require.Equal(t, uint64(1), stats.PermitsGranted)
}

func TestAllowWithoutPermitServer(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	c := f.connect(t, baldur.WithRequestTimeout(50*time.Millisecond))
	f.putState(t, "ledger", "half_open", "auto", 1, time.Time{})
	waitGeneration(t, c, f, "ledger", 1)
	require.False(t, c.Allow("ledger"), "no breaker-worker answers: no permit")
	err := c.Execute(context.Background(), "ledger", func(context.Context) error { return nil })
	require.ErrorIs(t, err, baldur.ErrNoPermit)
}

func TestDownstreamChecker(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	c := f.connect(t)
	var asked atomic.Int64
	unregister := c.RegisterDownstreamChecker(func(svc string) bool {
		asked.Add(1)
		return svc != "search"
	})
	require.False(t, c.Allow("search"))
	require.True(t, c.Allow("payments"))
	b := c.Breaker("search")
	require.False(t, b.Allow())
	err := c.Execute(context.Background(), "search", func(context.Context) error { return nil })
	require.ErrorIs(t, err, baldur.ErrDownstream)
	require.Equal(t, int64(4), asked.Load())
	unregister()
	require.True(t, c.Allow("search"))
	require.Equal(t, int64(4), asked.Load())
}

func TestRecordReportsCounts(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	_, err := f.top.ConfigKV.Put(context.Background(), "payments", []byte(`{"slow_call_duration":"100ms"}`))
	require.NoError(t, err)
	c := f.connect(t, baldur.WithFlushInterval(time.Hour), baldur.WithFailureFlushGap(-1), baldur.WithNodeID("pod-7"))
	ctx := context.Background()
	b := c.Breaker("payments")
	require.Equal(t, "payments", b.Name())
	require.NoError(t, b.Err())

	// The config reaches the client's view; wait for it to count slow calls.
	require.Eventually(t, func() bool {
		b.Record(baldur.Success(time.Second))
		require.NoError(t, c.Flush(ctx))
		return sum(f.readReports(t, 1), "payments").SlowCalls > 0
	}, waitFor, 10*time.Millisecond)
	before := sum(f.readReports(t, 1), "payments")

	b.Record(baldur.Success(time.Millisecond))
	b.Record(baldur.Success(200 * time.Millisecond)) // slow
	b.Record(baldur.Failure(time.Millisecond, "TIMEOUT"))
	b.Record(baldur.Success(time.Millisecond))
	b.Record(baldur.Result(typedErr{"HTTP_503"}, time.Millisecond))
	b.Record(baldur.Result(fmt.Errorf("wrapped: %w", typedErr{"HTTP_503"}), 300*time.Millisecond)) // slow
	b.Record(baldur.Outcome{Failed: true})
	c.Record("search", baldur.Failure(0, ""))
	require.Equal(t, int64(8), c.Stats().Unreported)
	require.NoError(t, c.Flush(ctx))
	require.Zero(t, c.Stats().Unreported)

	all := f.readReports(t, 1)
	var pay report
	for _, r := range all {
		if r.Service == "payments" {
			pay = r
		}
	}
	require.Equal(t, "pod-7", pay.Source)
	require.Equal(t, int64(3), pay.Successes)
	require.Equal(t, int64(4), pay.Failures)
	require.Equal(t, int64(2), pay.SlowCalls)
	require.Equal(t, int64(3), pay.TrailingFailures, "failures after the last success")
	require.Equal(t, map[string]int64{"TIMEOUT": 1, "HTTP_503": 2}, pay.FailureTypes)
	total := sum(all, "payments")
	require.Equal(t, before.Successes+3, total.Successes)
	search := sum(all, "search")
	require.Equal(t, int64(1), search.Failures)
	for _, r := range all {
		if r.Service == "search" {
			require.Equal(t, int64(1), r.TrailingFailures)
		}
	}
	st := c.Stats()
	require.GreaterOrEqual(t, st.Reports, uint64(3))
	require.Zero(t, st.Dropped)
}

type typedErr struct{ typ string }

func (e typedErr) Error() string       { return "failed: " + e.typ }
func (e typedErr) FailureType() string { return e.typ }

func TestFailureTypesAreBounded(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	c := f.connect(t, baldur.WithFlushInterval(time.Hour), baldur.WithFailureFlushGap(-1))
	for i := range 40 {
		c.Record("orders", baldur.Failure(0, fmt.Sprintf("T%d", i)))
	}
	c.Record("orders", baldur.Failure(0, "not a token!"))
	require.NoError(t, c.Flush(context.Background()))
	r := f.readReports(t, 1)[0]
	require.Equal(t, int64(41), r.Failures)
	require.Len(t, r.FailureTypes, events.MaxFailureTypes)
	require.Equal(t, int64(41-31), r.FailureTypes[baldur.OtherFailureType])
}

func TestFailureIsReportedAtOnce(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	c := f.connect(t, baldur.WithFlushInterval(time.Hour))
	c.Record("payments", baldur.Success(0))
	c.Record("payments", baldur.Failure(0, "TIMEOUT"))
	rs := f.readReports(t, 1)
	require.Equal(t, int64(1), sum(rs, "payments").Failures)
}

func TestCloseFlushes(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	c := f.connect(t, baldur.WithFlushInterval(time.Hour), baldur.WithFailureFlushGap(-1))
	for range 5 {
		c.Record("payments", baldur.Success(0))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, c.Close(ctx))
	require.ErrorIs(t, c.Close(ctx), baldur.ErrClosed)
	require.Equal(t, int64(5), sum(f.readReports(t, 1), "payments").Successes)
	require.ErrorIs(t, c.Execute(ctx, "payments", func(context.Context) error { return nil }), baldur.ErrClosed)
	require.ErrorIs(t, c.DeadLetter(ctx, baldur.FailedOperation{}), baldur.ErrClosed)
	_, err := c.HandleReplay("payments", func(context.Context, baldur.ReplayRequest) error { return nil })
	require.ErrorIs(t, err, baldur.ErrClosed)
}

func TestBufferMergesAndDropsWhenFull(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	c := f.connect(t, baldur.WithFlushInterval(time.Hour), baldur.WithFailureFlushGap(-1), baldur.WithBufferSize(1))
	ctx := context.Background()
	// Without the input stream no publish is stored.
	require.NoError(t, f.env.JS.DeleteStream(ctx, topology.StreamInput))

	c.Record("a", baldur.Success(0))
	c.Record("b", baldur.Success(0))
	c.Record("c", baldur.Success(0))
	require.ErrorIs(t, c.Flush(ctx), baldur.ErrPublish)
	st := c.Stats()
	require.Equal(t, 1, st.Buffered)
	require.Equal(t, uint64(2), st.Dropped)
	require.Equal(t, uint64(2), st.DroppedCalls)

	// More calls for the buffered service merge into its report.
	for _, svc := range []string{"a", "b", "c"} {
		c.Record(svc, baldur.Failure(0, ""))
	}
	require.ErrorIs(t, c.Flush(ctx), baldur.ErrPublish)
	st = c.Stats()
	require.Equal(t, 1, st.Buffered)
	require.Equal(t, int64(2), st.BufferedCalls)
	require.Equal(t, uint64(4), st.Dropped)

	// The stream is back: the merged report arrives.
	_, err := topology.Ensure(ctx, f.env.JS, topology.Config{Partitions: 4, Storage: jetstream.MemoryStorage})
	require.NoError(t, err)
	require.NoError(t, c.Flush(ctx))
	rs := f.readReports(t, 1)
	require.Len(t, rs, 1)
	require.Equal(t, int64(1), rs[0].Successes)
	require.Equal(t, int64(1), rs[0].Failures)
	require.Equal(t, int64(1), rs[0].TrailingFailures)
	require.Zero(t, c.Stats().Buffered)
}

func TestBreakerIsResolvedOnce(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	c := f.connect(t)
	b := c.Breaker("payments")
	for i := range 200 {
		name := strings.Clone("payments")
		require.Same(t, b, c.Breaker(name))
		require.NotSame(t, b, c.Breaker(fmt.Sprintf("svc-%d", i)))
	}
	require.Same(t, b, c.Breaker("payments"))
}

func TestInvalidServiceName(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	c := f.connect(t)
	b := c.Breaker("pay.ments")
	require.ErrorIs(t, b.Err(), baldur.ErrInvalidService)
	require.True(t, b.Allow())
	b.Record(baldur.Failure(0, ""))
	require.Equal(t, uint64(1), c.Stats().InvalidRecords)
	err := c.Execute(context.Background(), "pay.ments", func(context.Context) error { return nil })
	require.ErrorIs(t, err, baldur.ErrInvalidService)
	_, err = c.HandleReplay("", func(context.Context, baldur.ReplayRequest) error { return nil })
	require.ErrorIs(t, err, baldur.ErrInvalidService)
}

var errBoom = errors.New("boom")
