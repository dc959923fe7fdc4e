package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/admin"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/telemetry"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// TestDLQBodiesNeedTheToken: without the token the dead letters are listed
// and shown without their request and metadata; with it, whole.
func TestDLQBodiesNeedTheToken(t *testing.T) {
	t.Parallel()
	srv, _ := apiServer(t, tok)
	h := srv.Handler()
	for _, path := range []string{"/api/dlq?service=payments", "/api/dlq/0b6a2a4e-5b0d-4d61-9a43-2b7f0c9e8d15"} {
		rec, _ := do(t, h, "GET", path, "")
		require.Equal(t, http.StatusOK, rec.Code, path)
		require.NotContains(t, rec.Body.String(), "4111", "%s: the body is withheld", path)
		require.NotContains(t, rec.Body.String(), `"region"`, path)
		require.Contains(t, rec.Body.String(), `"redacted":true`, path)

		rec, _ = do(t, h, "GET", path, "", auth...)
		require.Equal(t, http.StatusOK, rec.Code, path)
		require.Contains(t, rec.Body.String(), `{"card":"4111"}`, "%s: the token reads the body", path)
		require.NotContains(t, rec.Body.String(), "redacted", path)
	}
	rec, _ := do(t, h, "GET", "/api/dlq/stats", "")
	require.Equal(t, http.StatusOK, rec.Code, "the counts are public")
}

// TestForeignHostRefused: a dashboard on loopback answers only requests
// naming a loopback host, which defeats DNS rebinding.
func TestForeignHostRefused(t *testing.T) {
	t.Parallel()
	srv, _ := apiServer(t, tok)
	h := srv.Handler()
	for host, want := range map[string]int{
		"127.0.0.1:8080": http.StatusOK, "localhost:8080": http.StatusOK, "LOCALHOST": http.StatusOK, "[::1]:8080": http.StatusOK,
		"evil.example:8080": http.StatusMisdirectedRequest, "attacker.test": http.StatusMisdirectedRequest,
		"127.0.0.1.nip.io:8080": http.StatusMisdirectedRequest,
	} {
		rec, body := do(t, h, "GET", "/api/breakers", "", "Host", host)
		require.Equal(t, want, rec.Code, host)
		if want != http.StatusOK {
			require.Contains(t, body["error"], "is not served here", host)
		}
		rec, _ = do(t, h, "GET", "/api/health", "", "Host", host)
		require.Equal(t, http.StatusOK, rec.Code, "the health probe answers %s", host)
	}

	env := testenv.NATS(t)
	open, err := admin.New(admin.Config{Addr: "0.0.0.0:8080"}, admin.Deps{JetStream: env.JS, Operator: &fakeOperator{}})
	require.NoError(t, err)
	rec, _ := do(t, open.Handler(), "GET", "/", "", "Host", "admin.internal:8080")
	require.Equal(t, http.StatusOK, rec.Code, "a dashboard on every interface takes any host unless AllowedHosts says otherwise")
	named, err := admin.New(admin.Config{Addr: "0.0.0.0:8080", AllowedHosts: []string{"admin.internal"}}, admin.Deps{JetStream: env.JS, Operator: &fakeOperator{}})
	require.NoError(t, err)
	rec, _ = do(t, named.Handler(), "GET", "/", "", "Host", "admin.internal:8080")
	require.Equal(t, http.StatusOK, rec.Code)
	rec, _ = do(t, named.Handler(), "GET", "/", "", "Host", "other:8080")
	require.Equal(t, http.StatusMisdirectedRequest, rec.Code)
}

// TestEveryRequestHasADeadline: a fleet request that never answers ends
// with the request's deadline, as a 504.
func TestEveryRequestHasADeadline(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	op := &fakeOperator{hang: true}
	srv, err := admin.New(admin.Config{RequestTimeout: 200 * time.Millisecond}, admin.Deps{JetStream: env.JS, Operator: op})
	require.NoError(t, err)
	for _, path := range []string{"/api/dlq/stats", "/api/dlq", "/api/dlq/0b6a2a4e-5b0d-4d61-9a43-2b7f0c9e8d15"} {
		start := time.Now()
		rec, body := do(t, srv.Handler(), "GET", path, "")
		require.Equal(t, http.StatusGatewayTimeout, rec.Code, path)
		require.NotEmpty(t, body["error"], path)
		require.Less(t, time.Since(start), 2*time.Second, path)
	}
}

// TestServerSurvivesIdleAndStalledClients: 40 live dashboards that never
// read while the breakers churn, and 40 connections that send two bytes and
// stall, leave the server's memory within bounds and it keeps answering; the
// stalled connections are closed; past MaxLiveClients a dashboard gets 503.
// It does not run in parallel: it measures the process's heap.
func TestServerSurvivesIdleAndStalledClients(t *testing.T) {
	env := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	top, err := topology.Ensure(ctx, env.JS, topology.Config{})
	require.NoError(t, err)
	srv, err := admin.New(admin.Config{Addr: "127.0.0.1:0", DLQPoll: time.Hour, MaxLiveClients: 41, LiveWriteTimeout: time.Second},
		admin.Deps{JetStream: env.JS, Operator: &fakeOperator{}})
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	t.Cleanup(func() { require.NoError(t, srv.Stop(context.Background())) })
	addr := srv.Addr()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()

	dial := func() *net.TCPConn {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		tc := c.(*net.TCPConn)
		require.NoError(t, tc.SetReadBuffer(4<<10))
		t.Cleanup(func() { _ = tc.Close() })
		return tc
	}
	var stalled []*net.TCPConn
	for range 40 {
		c := dial()
		_, err := fmt.Fprintf(c, "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		require.NoError(t, err) // and never read
		s := dial()
		_, err = io.WriteString(s, "GE")
		require.NoError(t, err)
		stalled = append(stalled, s)
	}
	require.Eventually(t, func() bool { return srv.LiveClients() == 40 }, 30*time.Second, 10*time.Millisecond,
		"the idle live clients are served: %d", srv.LiveClients())
	// One more live client fits; the next one is refused.
	res, err := http.Get("http://" + addr + "/api/events")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, 41, srv.LiveClients())
	refused, err := http.Get("http://" + addr + "/api/events")
	require.NoError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, refused.StatusCode, "a live client past the cap is refused")
	require.Equal(t, "10", refused.Header.Get("Retry-After"))
	require.NoError(t, refused.Body.Close())
	require.NoError(t, res.Body.Close())

	// Churn: every breaker write goes to every live client.
	big := domain.NewBreaker("x")
	for i := range 2000 {
		b := big
		b.Service = fmt.Sprintf("svc-%d", i%200)
		b.Generation = uint64(i)
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		_, err = top.Breakers.Put(ctx, b.Service, raw)
		require.NoError(t, err)
	}
	start := time.Now()
	res, err = http.Get("http://" + addr + "/api/health")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.NoError(t, res.Body.Close())
	require.Less(t, time.Since(start), 2*time.Second, "the server keeps answering")

	// The stalled connections are closed once the header deadline passes.
	for _, s := range stalled {
		require.NoError(t, s.SetReadDeadline(time.Now().Add(telemetry.ReadHeaderTimeout+5*time.Second)))
		_, err := io.ReadAll(bufio.NewReader(s))
		require.NoError(t, err, "the server closes a stalled connection (EOF), the client does not time out")
	}
	// What the idle clients were not sent waits in the sockets' buffers,
	// not in the server's heap; once those are full a write blocks, passes
	// LiveWriteTimeout and the client is dropped.
	grown := int64(heap()) - int64(before)
	t.Logf("heap grew by %d KiB with 40 idle live clients and 40 stalled connections", grown>>10)
	require.Less(t, grown, int64(64<<20), "the server's memory stays within bounds")
}
