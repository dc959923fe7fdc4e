package telemetry_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/baldurfleet/baldur/internal/devstack"
	"github.com/baldurfleet/baldur/internal/telemetry"
)

func TestCarrierKeepsExactHeaderNames(t *testing.T) {
	t.Parallel()
	ctx, span := telemetry.Tracer("test").Start(context.Background(), "carrier")
	defer span.End()
	msg := nats.NewMsg("baldur.dlq.x")
	telemetry.Inject(ctx, msg)
	require.Contains(t, msg.Header, "traceparent", "lowercase, as W3C readers expect")
	require.NotContains(t, msg.Header, "Traceparent")

	got := trace.SpanContextFromContext(telemetry.Extract(context.Background(), msg.Header))
	require.Equal(t, span.SpanContext().TraceID(), got.TraceID())
	require.Equal(t, span.SpanContext().SpanID(), got.SpanID())
	require.True(t, got.IsRemote())

	// A sender that canonicalised the name is still understood.
	canon := nats.Header{}
	canon.Set("traceparent", msg.Header["traceparent"][0])
	require.Equal(t, got.TraceID(), telemetry.SpanContextOf(canon).TraceID())
	require.False(t, telemetry.SpanContextOf(nats.Header{}).IsValid())

	// Without a span nothing is written.
	empty := nats.NewMsg("x")
	telemetry.Inject(context.Background(), empty)
	require.Empty(t, empty.Header)

	tp := telemetry.TraceParent(ctx)
	require.Equal(t, msg.Header["traceparent"][0], tp)
	require.Equal(t, got.TraceID(), trace.SpanContextFromContext(telemetry.ContextWithTraceParent(context.Background(), tp)).TraceID())
}

func TestLogHandlerAddsTraceIDs(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(&buf, nil))).With(slog.String("node", "n1"))
	ctx, span := telemetry.Tracer("test").Start(context.Background(), "log")
	defer span.End()
	log.InfoContext(ctx, "hello", slog.String("service", "payments"))
	require.Contains(t, buf.String(), `"trace_id":"`+span.SpanContext().TraceID().String()+`"`)
	require.Contains(t, buf.String(), `"span_id":"`+span.SpanContext().SpanID().String()+`"`)
	require.Contains(t, buf.String(), `"node":"n1"`)
	buf.Reset()
	log.Info("no span")
	require.NotContains(t, buf.String(), "trace_id")
}

func TestReadyzFollowsNATS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := func(port int) *devstack.NATS {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		srv, err := devstack.StartNATS(ctx, devstack.NATSOptions{Port: port, StoreDir: dir})
		require.NoError(t, err)
		t.Cleanup(srv.Shutdown)
		return srv
	}
	first := start(devstack.RandomPort)
	u, err := url.Parse(first.ClientURL())
	require.NoError(t, err)
	port, err := strconv.Atoi(u.Port())
	require.NoError(t, err)
	nc, err := nats.Connect(first.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	srv := httptest.NewServer(telemetry.Handler(provider.Metrics(), telemetry.NATSCheck(nc)))
	t.Cleanup(srv.Close)
	status := func(path string) int {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, status("/readyz"))
	require.Equal(t, http.StatusOK, status("/healthz"))
	require.Equal(t, http.StatusOK, status("/metrics"))

	first.Shutdown()
	require.Eventually(t, func() bool { return status("/readyz") == http.StatusServiceUnavailable }, waitFor, 10*time.Millisecond)
	require.Equal(t, http.StatusOK, status("/healthz"), "alive while not ready")

	start(port)
	require.Eventually(t, func() bool { return status("/readyz") == http.StatusOK }, waitFor, 10*time.Millisecond)
}
