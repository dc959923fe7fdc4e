package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env reads m; the audit key is the tests' unless m sets BALDUR_AUDIT_KEY
// (to "" for none).
func env(m map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := m[k]; ok || k != process.EnvAuditKey {
			return v
		}
		return string(testenv.AuditKey)
	}
}

func TestRunRefusesBadConfiguration(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no database", nil, "--database-url ($BALDUR_DATABASE_URL) is required"},
		{"bad ingest batch", []string{"--database-url", "postgres://x/y", "--ingest-batch", "-5"}, "ingest batch"},
		{"bad max pending", []string{"--database-url", "postgres://x/y", "--ingest-max-pending-per-service", "-5"}, "ingest max pending per service -5"},
		{"unknown flag", []string{"--colour", "red"}, "colour"},
		{"no audit key", []string{"--database-url", "postgres://x/y", "--audit-key-file", ""}, "--audit-key-file ($BALDUR_AUDIT_KEY_FILE)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var out testenv.Buffer
			e := env(nil)
			if c.name == "no audit key" {
				e = env(map[string]string{process.EnvAuditKey: ""})
			}
			code := run(t.Context(), c.args, e, &out, nil)
			require.Equal(t, exitUsage, code)
			// The flag package may print the usage first; the reason is the
			// last line, and one line.
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			last := lines[len(lines)-1]
			require.True(t, strings.HasPrefix(last, "replay-worker: ") && strings.Contains(last, "invalid config"), last)
			require.Contains(t, last, c.want)
		})
	}
}

func TestRunExitsWhenNATSIsUnreachable(t *testing.T) {
	t.Parallel()
	var out testenv.Buffer
	code := run(t.Context(), []string{"--nats-url", "nats://127.0.0.1:1", "--database-url", "postgres://127.0.0.1:1/x"}, env(nil), &out, nil)
	require.Equal(t, exitFailed, code)
	line := strings.TrimSpace(out.String())
	require.NotContains(t, line, "\n", "one line")
	require.Contains(t, line, "unreachable")
	require.Contains(t, line, "NATS")
}

func TestRunExitsWhenPostgresIsUnreachable(t *testing.T) {
	t.Parallel()
	n := testenv.NATS(t)
	var out testenv.Buffer
	code := run(t.Context(), []string{"--nats-url", n.URL, "--database-url", "postgres://postgres:secret@127.0.0.1:1/x?connect_timeout=2"}, env(nil), &out, nil)
	require.Equal(t, exitFailed, code)
	line := strings.TrimSpace(out.String())
	require.NotContains(t, line, "\n", "one line")
	require.Contains(t, line, "PostgreSQL")
	require.Contains(t, line, "unreachable")
	require.NotContains(t, line, "secret", "the password is redacted")
}

func TestRunIngestsAndStopsOnSignal(t *testing.T) {
	t.Parallel()
	n := testenv.NATS(t)
	dbURL := testenv.PostgresURL(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := make(chan *replay.Worker, 1)
	done := make(chan int, 1)
	var out testenv.Buffer
	go func() {
		done <- run(ctx, []string{"--node-id", "rw-1", "--ingest-max-wait", "10ms"},
			env(map[string]string{"BALDUR_NATS_URL": n.URL, "BALDUR_DATABASE_URL": dbURL}), &out, func(w *replay.Worker) { ready <- w })
	}()
	var w *replay.Worker
	select {
	case w = <-ready:
	case code := <-done:
		t.Fatalf("run exited with %d: %s", code, out.String())
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not start")
	}
	require.Equal(t, "rw-1", w.Config().NodeID)

	dl := events.DeadLetter{Domain: domain.DomainCustom, FailureType: "X", Operation: "op"}
	m, err := events.NewMsg(events.MustDLQSubject("payments"), events.NewEnvelope(events.TypeDLQ, uuid.New(), "svc", time.Now()), dl)
	require.NoError(t, err)
	_, err = n.JS.PublishMsg(t.Context(), m)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return w.Ingest().Stats().Inserted == 1 }, 10*time.Second, 10*time.Millisecond)

	cancel() // as SIGTERM does
	select {
	case code := <-done:
		require.Equal(t, exitOK, code, out.String())
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not stop")
	}
}
