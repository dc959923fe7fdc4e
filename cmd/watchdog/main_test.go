package main

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/worker"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestRunStopsCleanly checks the documented exit code of a clean stop (0,
// operations.md "Exit codes"): the watchdog becomes ready, and ends with 0
// when its context ends as on SIGTERM.
func TestRunStopsCleanly(t *testing.T) {
	t.Parallel()
	n := testenv.NATS(t)
	dbURL := testenv.PostgresURL(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	vars := map[string]string{
		process.EnvNATSURL: n.URL, process.EnvDatabaseURL: dbURL, process.EnvAuditKey: string(testenv.AuditKey),
	}
	var out testenv.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--node-id", "wd-1", "--http-addr", addr}, func(k string) string { return vars[k] }, &out)
	}()
	require.Eventually(t, func() bool {
		select {
		case code := <-done:
			require.Failf(t, "the watchdog exited", "code %d: %s", code, out.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "never ready: %s", &out)

	cancel()
	select {
	case code := <-done:
		require.Equal(t, worker.ExitOK, code, out.String())
	case <-time.After(stopTimeout + 5*time.Second):
		t.Fatal("the watchdog did not stop")
	}
}

func TestRunVersionAnswersFirst(t *testing.T) {
	t.Parallel()
	var out testenv.Buffer
	// --version wins over a bad flag and a missing --database-url.
	code := run(t.Context(), []string{"--colour", "red", "--version"}, func(string) string { return "" }, &out)
	require.Equal(t, worker.ExitOK, code)
	require.Empty(t, out.String(), "the version goes to stdout, nothing to stderr")
	code = run(t.Context(), []string{"--colour", "red"}, func(string) string { return "" }, &out)
	require.Equal(t, worker.ExitUsage, code)
	require.Contains(t, out.String(), "colour")
}
