package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/baldurfleet/baldur"
	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/telemetry"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

const waitFor = 30 * time.Second

// TestScenario drives a small fleet — an SDK client, a breaker-worker and a
// replay-worker on an embedded NATS and a fresh PostgreSQL — through reports
// that trip a breaker and a dead letter that is ingested and replayed, then
// reads the spans and /metrics.
func TestScenario(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	t.Cleanup(cancel)
	env := testenv.NATS(t)
	pool := testenv.Postgres(t)
	discard := slog.New(slog.DiscardHandler)

	top, err := topology.Ensure(ctx, env.JS, topology.Config{})
	require.NoError(t, err)
	_, err = topology.EnsureReplay(ctx, env.JS, topology.Config{})
	require.NoError(t, err)
	const tripSvc, dlqSvc = "obs-trip", "obs-dlq"
	_, err = top.ConfigKV.Put(ctx, tripSvc, []byte(`{"minimum_calls": 1, "failure_threshold": 3}`))
	require.NoError(t, err)

	view, err := fleetstate.Watch(ctx, env.JS)
	require.NoError(t, err)
	t.Cleanup(view.Stop)
	bw, err := breaker.New(env.JS, breaker.Config{Topology: top, Node: "bw1", Configs: view, Governance: view, Conn: env.Conn, Logger: discard})
	require.NoError(t, err)
	require.NoError(t, bw.Start(ctx))
	t.Cleanup(func() { _ = bw.Stop(context.Background()) })

	rw, err := replay.New(replay.Config{NodeID: "rw1"}.WithDefaults(), replay.Deps{
		Store: store.New(pool, store.WithAuditKey(testenv.AuditKey)), NC: env.Conn, JS: env.JS, View: replay.FleetView(view), Logger: discard,
	})
	require.NoError(t, err)
	require.NoError(t, rw.Start(ctx))
	t.Cleanup(func() { _ = rw.Stop(context.Background()) })

	meter := telemetry.Meter("test")
	for _, reg := range []func() error{
		func() error {
			r, err := bw.RegisterMetrics(meter)
			t.Cleanup(func() { _ = r.Unregister() })
			return err
		},
		func() error {
			r, err := view.RegisterMetrics(meter)
			t.Cleanup(func() { _ = r.Unregister() })
			return err
		},
		func() error {
			r, err := rw.RegisterMetrics(meter)
			t.Cleanup(func() { _ = r.Unregister() })
			return err
		},
	} {
		require.NoError(t, reg())
	}

	client, err := baldur.Connect(ctx, env.Connect(t), baldur.WithNodeID("svc-node-1"), baldur.WithLogger(discard))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close(context.Background()) })

	// Reports that trip obs-trip.
	b := client.Breaker(tripSvc)
	for range 3 {
		b.Record(baldur.Failure(time.Millisecond, "TIMEOUT"))
	}
	require.NoError(t, client.Flush(ctx))
	require.Eventually(t, func() bool {
		s, ok := view.Snapshot(tripSvc)
		return ok && s.State == "open"
	}, waitFor, 5*time.Millisecond)

	// A failed call whose operation becomes a dead letter, replayed to the
	// service's handler.
	handled := make(chan trace.SpanContext, 1)
	stop, err := client.HandleReplay(dlqSvc, func(ctx context.Context, _ baldur.ReplayRequest) error {
		handled <- trace.SpanContextFromContext(ctx)
		return nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = stop() })
	callCtx, call := telemetry.Tracer("test").Start(ctx, "charge")
	id := uuid.NewString()
	require.NoError(t, client.DeadLetter(callCtx, baldur.FailedOperation{
		ID: id, Service: dlqSvc, Operation: "charge", IdempotencyKey: "order-1", Err: io.ErrUnexpectedEOF,
	}))
	call.End()
	require.Eventually(t, func() bool { return rw.Ingest().Stats().Inserted >= 1 }, waitFor, 5*time.Millisecond)
	res, err := rw.Engine().ReplayEntries(ctx, dlqSvc, []string{id}, replay.ReplayOptions{Actor: "sre"})
	require.NoError(t, err)
	require.Equal(t, 1, res.Success)
	var handlerSC trace.SpanContext
	select {
	case handlerSC = <-handled:
	case <-ctx.Done():
		t.Fatal("the replay handler was not called")
	}

	t.Run("trace of a dead letter", func(t *testing.T) {
		traceID := call.SpanContext().TraceID()
		require.Equal(t, traceID, handlerSC.TraceID(), "the handler runs in the failed call's trace")
		got := spansOf(spans.GetSpans(), traceID)
		// failed call → dead letter → ingest → replay request → handler,
		// each the parent of the next.
		chain := []string{"charge", "send baldur.dlq." + dlqSvc, "process baldur.dlq." + dlqSvc,
			"send baldur.replay." + dlqSvc, "process baldur.replay." + dlqSvc}
		var parent trace.SpanID
		for i, name := range chain {
			s, ok := got[name]
			require.True(t, ok, "span %q is missing from the trace; have %v", name, keys(got))
			if i > 0 {
				require.Equal(t, parent, s.Parent.SpanID(), "%q is the child of %q", name, chain[i-1])
			}
			parent = s.SpanContext.SpanID()
		}
		require.Equal(t, parent, handlerSC.SpanID(), "the handler's context is its span")
	})

	t.Run("trace of a trip", func(t *testing.T) {
		all := spans.GetSpans()
		reports := map[trace.SpanID]bool{}
		var folds []*tracetest.SpanStub
		var transition *tracetest.SpanStub
		for i := range all {
			s := &all[i]
			switch s.Name {
			case "send baldur.outcome." + tripSvc:
				reports[s.SpanContext.SpanID()] = true
			case "fold " + tripSvc:
				folds = append(folds, s)
			case "send baldur.event.breaker." + tripSvc + ".opened":
				transition = s
			}
		}
		require.NotEmpty(t, reports)
		require.NotNil(t, transition, "the transition publish has a span")
		// The reports may be folded in more than one batch, each its own
		// trace: the transition is in the trace of the fold that tripped.
		var fold *tracetest.SpanStub
		for _, f := range folds {
			if f.SpanContext.TraceID() == transition.SpanContext.TraceID() {
				fold = f
			}
		}
		require.NotNil(t, fold, "the transition is in a fold's trace (%d folds)", len(folds))
		require.NotEmpty(t, fold.Links, "the fold links to the reports it folded")
		for _, l := range fold.Links {
			require.True(t, reports[l.SpanContext.SpanID()], "the fold links to a report's span")
		}
	})

	t.Run("metrics", func(t *testing.T) {
		srv := httptest.NewServer(telemetry.Handler(provider.Metrics()))
		t.Cleanup(srv.Close)
		var body string
		want := []string{
			`baldur_breaker_state{baldur_breaker_state="open",baldur_service="obs-trip"`,
			`baldur_breaker_transitions_total{baldur_breaker_state="open",baldur_breaker_trigger="auto",baldur_service="obs-trip"`,
			`baldur_breaker_reports_folded_total{`,
			`baldur_replay_attempts_total{baldur_replay_result="ok",baldur_service="obs-dlq"`,
			`baldur_replay_duration_seconds_count{baldur_replay_result="ok",baldur_service="obs-dlq"`,
			`baldur_dlq_entries{baldur_dlq_status="replayed",baldur_service="obs-dlq"`,
			`baldur_dlq_ingested_total{baldur_replay_result="inserted"`,
			`baldur_sdk_buffer_depth{`,
			`baldur_sdk_reports_dropped_total{`,
			`baldur_governance_kill_switch{`,
		}
		require.Eventually(t, func() bool {
			body = get(t, srv.URL+"/metrics")
			for _, w := range want {
				if !strings.Contains(body, w) {
					return false
				}
			}
			return true
		}, waitFor, 20*time.Millisecond, "series missing from /metrics")
		t.Log(body)
		for _, w := range []string{
			`baldur_breaker_state{baldur_breaker_state="open",baldur_service="obs-trip"`,
			`baldur_breaker_transitions_total{baldur_breaker_state="open",baldur_breaker_trigger="auto",baldur_service="obs-trip"`,
			`baldur_replay_attempts_total{baldur_replay_result="ok",baldur_service="obs-dlq"`,
			`baldur_dlq_entries{baldur_dlq_status="replayed",baldur_service="obs-dlq"`,
		} {
			require.Equal(t, "1", valueOf(body, w), "%s", w)
		}
		require.Equal(t, "0", valueOf(body, `baldur_breaker_state{baldur_breaker_state="closed",baldur_service="obs-trip"`))
		require.NotContains(t, []string{"", "0"}, valueOf(body, `baldur_breaker_reports_folded_total{`), "reports were folded")
	})
}

// spansOf returns the spans of one trace by name.
func spansOf(all tracetest.SpanStubs, id trace.TraceID) map[string]tracetest.SpanStub {
	out := map[string]tracetest.SpanStub{}
	for _, s := range all {
		if s.SpanContext.TraceID() == id {
			out[s.Name] = s
		}
	}
	return out
}

func keys(m map[string]tracetest.SpanStub) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// valueOf returns the value of the first series starting with prefix.
func valueOf(body, prefix string) string {
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			return f[len(f)-1]
		}
	}
	return ""
}
