package baldur_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur"
	"github.com/baldurfleet/baldur/internal/devstack"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// deadLetters reads the first n messages of BALDUR_DLQ (a work queue: read
// by sequence, not consumed).
func (f *fleet) deadLetters(t *testing.T, n int) []events.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	stream, err := f.env.JS.Stream(ctx, topology.StreamDLQ)
	require.NoError(t, err)
	var out []events.Message
	for seq := uint64(1); len(out) < n; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		require.NoError(t, err)
		msg, err := events.Decode(m.Subject, m.Header, m.Data)
		require.NoError(t, err)
		out = append(out, msg)
	}
	return out
}

func TestExecute(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	c := f.connect(t, baldur.WithFlushInterval(time.Hour), baldur.WithFailureFlushGap(-1))
	ctx := context.Background()

	// Closed: fn runs, its outcome is recorded, its error returned as is.
	require.NoError(t, c.Execute(ctx, "payments", func(context.Context) error { return nil }))
	require.ErrorIs(t, c.Execute(ctx, "payments", func(context.Context) error { return errBoom }), errBoom)
	v, err := baldur.ExecuteValue(ctx, c, "payments", func(context.Context) (int, error) { return 7, nil })
	require.NoError(t, err)
	require.Equal(t, 7, v)
	// A call the caller canceled is not recorded.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, c.Execute(cctx, "payments", func(ctx context.Context) error { return ctx.Err() }), context.Canceled)
	require.NoError(t, c.Flush(ctx))
	r := sum(f.readReports(t, 1), "payments")
	require.Equal(t, int64(2), r.Successes)
	require.Equal(t, int64(1), r.Failures)

	// Open: fn does not run; the fallbacks take over.
	f.putState(t, "payments", "open", "forced_open", 1, time.Now().Add(time.Hour))
	waitGeneration(t, c, f, "payments", 1)
	ran := false
	call := func(context.Context) error { ran = true; return nil }

	require.ErrorIs(t, c.Execute(ctx, "payments", call), baldur.ErrOpen)
	err = c.Execute(ctx, "payments", call, baldur.WithFallback(func(_ context.Context, err error) error {
		require.ErrorIs(t, err, baldur.ErrOpen)
		return nil
	}))
	require.NoError(t, err)
	v, err = baldur.ExecuteValue(ctx, c, "payments", func(context.Context) (int, error) { ran = true; return 7, nil },
		baldur.WithFallbackValue(42))
	require.NoError(t, err)
	require.Equal(t, 42, v)
	_, err = baldur.ExecuteValue(ctx, c, "payments", func(context.Context) (int, error) { return 7, nil },
		baldur.WithFallbackValue("wrong type"))
	require.ErrorIs(t, err, baldur.ErrInvalidOption)
	require.ErrorIs(t, c.Execute(ctx, "payments", call, baldur.WithFallbackValue(1)), baldur.ErrInvalidOption)
	require.False(t, ran)

	// A dead letter on refusal.
	op := baldur.FailedOperation{Operation: "charge", IdempotencyKey: "order-1", Request: map[string]any{"amount": 1999}}
	err = c.Execute(ctx, "payments", call, baldur.WithDeadLetter(op, false))
	require.ErrorIs(t, err, baldur.ErrOpen)
	dl := f.deadLetters(t, 1)[0]
	require.Equal(t, "payments", dl.Subject.Service)
	require.Equal(t, events.TypeDLQ, dl.Envelope.Type)
	body := dl.Payload.(events.DeadLetter)
	require.Equal(t, "CIRCUIT_OPEN", body.FailureType)
	require.Equal(t, "charge", body.Operation)
	require.JSONEq(t, `{"amount":1999}`, string(body.Request))
	require.Contains(t, body.ErrorMessage, "circuit breaker is open")

	// Failures: the fallback and dead letter apply only when asked.
	f.putState(t, "payments", "closed", "auto", 2, time.Time{})
	waitGeneration(t, c, f, "payments", 2)
	fail := func(context.Context) error { return typedErr{"HTTP_503"} }
	err = c.Execute(ctx, "payments", fail, baldur.WithFallback(func(context.Context, error) error { return nil }))
	require.Error(t, err)
	err = c.Execute(ctx, "payments", fail, baldur.FallbackOnFailure(), baldur.WithFallback(func(_ context.Context, err error) error {
		require.Equal(t, typedErr{"HTTP_503"}, err)
		return nil
	}))
	require.NoError(t, err)
	v, err = baldur.ExecuteValue(ctx, c, "payments", func(context.Context) (int, error) { return 0, errBoom },
		baldur.WithFallbackValue(-1), baldur.FallbackOnFailure())
	require.NoError(t, err)
	require.Equal(t, -1, v)
	err = c.Execute(ctx, "payments", fail, baldur.WithDeadLetter(op, true))
	require.Equal(t, typedErr{"HTTP_503"}, err)
	dls := f.deadLetters(t, 2)
	require.Equal(t, "HTTP_503", dls[1].Payload.(events.DeadLetter).FailureType)
}

func TestDeadLetter(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	c := f.connect(t, baldur.WithNodeID("pod-3"))
	ctx := context.Background()
	id := "9a1e3c57-0f6b-4e0e-8d8a-6c2b51f0e7aa"
	op := baldur.FailedOperation{
		ID: id, Service: "payments", Domain: baldur.DomainExternalService, FailureType: "PG_TIMEOUT",
		Operation: "charge", IdempotencyKey: "order-123-charge", EntityType: "order", EntityID: "123",
		Request: json.RawMessage(`{"amount":1999}`), ErrorCode: "504", Err: errors.New("upstream\ttimeout\x01"),
		Priority: baldur.PriorityCritical, MaxRetries: baldur.Retries(0), Metadata: map[string]any{"region": "eu"},
	}
	require.NoError(t, c.DeadLetter(ctx, op))
	require.NoError(t, c.DeadLetter(ctx, op), "the same id again")
	info, err := f.env.JS.Stream(ctx, topology.StreamDLQ)
	require.NoError(t, err)
	require.Equal(t, uint64(1), info.CachedInfo().State.Msgs, "stored once")
	msg := f.deadLetters(t, 1)[0]
	require.Equal(t, id, msg.Envelope.ID)
	require.Equal(t, "pod-3", msg.Envelope.Source)
	body := msg.Payload.(events.DeadLetter)
	require.Equal(t, "upstream\ttimeout ", body.ErrorMessage)
	require.Equal(t, 0, *body.MaxRetries)
	require.Equal(t, "critical", string(body.Priority))
	require.JSONEq(t, `{"region":"eu"}`, string(body.Metadata))

	for name, bad := range map[string]baldur.FailedOperation{
		"no service":     {Operation: "x"},
		"no operation":   {Service: "payments"},
		"bad id":         {ID: "nope", Service: "payments", Operation: "x"},
		"bad type":       {Service: "payments", Operation: "x", FailureType: "no spaces"},
		"bad request":    {Service: "payments", Operation: "x", Request: json.RawMessage(`{`)},
		"huge request":   {Service: "payments", Operation: "x", Request: strings.Repeat("x", 300<<10)},
		"bad domain":     {Service: "payments", Operation: "x", Domain: "moon"},
		"too many tries": {Service: "payments", Operation: "x", MaxRetries: baldur.Retries(101)},
		// encoding/json writes a NUL as \u0000, which PostgreSQL cannot store.
		"NUL in request":  {Service: "payments", Operation: "x", Request: map[string]string{"note": "a\x00b"}},
		"raw NUL request": {Service: "payments", Operation: "x", Request: json.RawMessage(`{"k":"\u0000"}`)},
		"surrogate":       {Service: "payments", Operation: "x", Request: json.RawMessage(`"\udfff"`)},
	} {
		require.ErrorIs(t, c.DeadLetter(ctx, bad), baldur.ErrInvalidDeadLetter, name)
	}
}

func TestHandleReplay(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	c := f.connect(t)
	stop, err := c.HandleReplay("payments", func(_ context.Context, req baldur.ReplayRequest) error {
		require.Equal(t, "payments", req.Service)
		require.Equal(t, "charge", req.Operation)
		switch string(req.Body) {
		case `{"n":1}`:
			require.Equal(t, 2, req.Attempt)
			require.Equal(t, "order-1", req.IdempotencyKey)
			require.Equal(t, "dlq-1", req.DLQID)
			require.NotEmpty(t, req.Header.Get(events.HeaderID))
			return nil
		case `{"n":2}`:
			return errors.New("card processor unavailable")
		case `{"n":3}`:
			return baldur.Permanent(errors.New("card refused"))
		}
		panic("unexpected")
	})
	require.NoError(t, err)
	requester := f.env.Connect(t)
	ask := func(body string) events.ReplayReply {
		t.Helper()
		d := events.ReplayDelivery{Service: "payments", DLQID: "dlq-1", Attempt: 2, Operation: "charge",
			IdempotencyKey: "order-1", Request: json.RawMessage(body)}
		msg, err := events.NewMsg(events.MustReplaySubject("payments"),
			events.NewEnvelopeRandomID(events.TypeReplay, "replay-worker", time.Now()), d)
		require.NoError(t, err)
		reply, err := requester.RequestMsg(msg, waitFor)
		require.NoError(t, err)
		r, err := events.DecodeReplayReply(reply.Data)
		require.NoError(t, err)
		return r
	}
	require.Equal(t, events.ReplayReply{OK: true}, ask(`{"n":1}`))
	require.Equal(t, events.ReplayReply{Error: "card processor unavailable", Retryable: true}, ask(`{"n":2}`))
	require.Equal(t, events.ReplayReply{Error: "card refused"}, ask(`{"n":3}`))
	r := ask(`{"n":4}`)
	require.False(t, r.OK)
	require.False(t, r.Retryable)
	require.Contains(t, r.Error, "panicked")

	// A malformed delivery is answered, not retried.
	bad, err := requester.Request(events.MustReplaySubject("payments"), []byte(`{}`), waitFor)
	require.NoError(t, err)
	br, err := events.DecodeReplayReply(bad.Data)
	require.NoError(t, err)
	require.False(t, br.OK)
	require.False(t, br.Retryable)

	require.NoError(t, stop())
	require.NoError(t, stop())
	_, err = requester.Request(events.MustReplaySubject("payments"), nil, time.Second)
	require.ErrorIs(t, err, nats.ErrNoResponders)
}

// TestReportsWaitWhileTheServerIsDown shuts the server down, records, starts
// it again on the same port and store, and finds every call reported.
func TestReportsWaitWhileTheServerIsDown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store := filepath.Join(t.TempDir(), "js")
	srv, err := devstack.StartNATS(ctx, devstack.NATSOptions{Port: devstack.RandomPort, StoreDir: store})
	require.NoError(t, err)
	addr := srv.ClientURL()
	t.Cleanup(func() { srv.Shutdown() })

	nc, err := nats.Connect(addr, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = topology.Ensure(ctx, js, topology.Config{Partitions: 2})
	require.NoError(t, err)
	c := connectOn(t, nc, baldur.WithFlushInterval(10*time.Millisecond), baldur.WithPublishTimeout(time.Second))

	c.Record("payments", baldur.Success(0))
	require.Eventually(t, func() bool { return c.Stats().ReportedCalls == 1 }, waitFor, time.Millisecond)

	srv.Shutdown()
	require.Eventually(t, func() bool { return nc.Status() != nats.CONNECTED }, waitFor, time.Millisecond)
	for range 10 {
		c.Record("payments", baldur.Success(0))
	}
	c.Record("payments", baldur.Failure(0, "TIMEOUT"))
	st := c.Stats()
	require.Equal(t, int64(11), st.Unreported+st.BufferedCalls)

	srv2, err := devstack.StartNATS(ctx, devstack.NATSOptions{Port: portOf(t, addr), StoreDir: store})
	require.NoError(t, err)
	t.Cleanup(srv2.Shutdown)
	require.Eventually(t, func() bool { return c.Stats().ReportedCalls == 12 }, waitFor, 5*time.Millisecond)
	rs := readReportsJS(t, js, 2)
	total := sum(rs, "payments")
	require.Equal(t, int64(11), total.Successes)
	require.Equal(t, int64(1), total.Failures)
	st = c.Stats()
	require.Zero(t, st.Dropped)
	require.Zero(t, st.Buffered)
	require.Zero(t, st.Unreported)
	closeCtx, cancelClose := context.WithTimeout(ctx, 5*time.Second)
	defer cancelClose()
	require.NoError(t, c.Close(closeCtx))
}

// portOf returns the port of a client URL.
func portOf(t *testing.T, clientURL string) int {
	t.Helper()
	u, err := url.Parse(clientURL)
	require.NoError(t, err)
	port, err := strconv.Atoi(u.Port())
	require.NoError(t, err)
	return port
}

// TestDeadLetterBacklogFull: beyond the service's bound in BALDUR_DLQ the
// dead letter is refused with ErrBacklogFull (nothing stored, nothing lost
// silently), while another service's go through.
func TestDeadLetterBacklogFull(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx := t.Context()
	_, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 1, Storage: jetstream.MemoryStorage, DLQMaxPerService: 3})
	require.NoError(t, err)
	c, err := baldur.Connect(ctx, env.Connect(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	for range 3 {
		require.NoError(t, c.DeadLetter(ctx, baldur.FailedOperation{Service: "flood", Operation: "charge"}))
	}
	err = c.DeadLetter(ctx, baldur.FailedOperation{Service: "flood", Operation: "charge"})
	require.ErrorIs(t, err, baldur.ErrBacklogFull)
	require.ErrorIs(t, err, baldur.ErrPublish)
	require.NoError(t, c.DeadLetter(ctx, baldur.FailedOperation{Service: "calm", Operation: "charge"}))
}
