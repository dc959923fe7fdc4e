package worker_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/telemetry"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
	"github.com/baldurfleet/baldur/internal/watchdog"
	"github.com/baldurfleet/baldur/internal/worker"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// stopBound is how long a role's graceful stop may take in the tests.
const stopBound = 10 * time.Second

// config is a process configuration for a test's NATS and, when dbURL is
// set, PostgreSQL, serving health on a free port.
func config(natsURL, dbURL string) process.Config {
	return process.Config{NATSURL: natsURL, DatabaseURL: dbURL, HTTPAddr: "127.0.0.1:0", NodeID: "w1", Replicas: 1}
}

// get returns the status and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// started is a started role as the tests see it.
type started interface {
	Checks() []telemetry.Check
	Stop(ctx context.Context) error
}

func startBreaker(ctx context.Context, res *worker.Resources) (started, error) {
	return worker.StartBreaker(ctx, res, breaker.Config{FetchWait: 50 * time.Millisecond})
}

func startReplay(ctx context.Context, res *worker.Resources) (started, error) {
	return worker.StartReplay(ctx, res, worker.ReplayConfig{Config: replay.Config{ShutdownTimeout: stopBound}})
}

func startWatchdog(ctx context.Context, res *worker.Resources) (started, error) {
	return worker.StartWatchdog(ctx, res, watchdog.Config{Tick: 50 * time.Millisecond})
}

// TestEachRoleOpensStartsAndStops opens the resources of each role (and of
// all three, as baldur dev does), starts the roles, serves health, stops
// them and checks that Close released everything.
func TestEachRoleOpensStartsAndStops(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		roles   []worker.Role
		pg      bool
		metrics []string
	}{
		{"breaker-worker", []worker.Role{worker.RoleBreaker}, false,
			[]string{"baldur_breaker_partitions_owned", "baldur_governance_kill_switch"}},
		{"replay-worker", []worker.Role{worker.RoleReplay}, true, []string{"baldur_dlq_ingested"}},
		{"watchdog", []worker.Role{worker.RoleWatchdog}, true, []string{"baldur_watchdog_"}},
		{"all three", []worker.Role{worker.RoleBreaker, worker.RoleReplay, worker.RoleWatchdog}, true,
			[]string{"baldur_breaker_partitions_owned", "baldur_dlq_ingested", "baldur_watchdog_"}},
	}
	starters := map[worker.Role]func(context.Context, *worker.Resources) (started, error){
		worker.RoleBreaker: startBreaker, worker.RoleReplay: startReplay, worker.RoleWatchdog: startWatchdog,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := testenv.NATS(t)
			dbURL := ""
			if tt.pg {
				dbURL = testenv.PostgresURL(t)
			}
			ctx := t.Context()
			res, err := worker.Open(ctx, config(n.URL, dbURL), worker.Options{Name: "test-" + tt.name, Roles: tt.roles, AuditKey: testenv.AuditKey})
			require.NoError(t, err)
			t.Cleanup(func() { _ = res.Close(context.Background()) })

			require.NotNil(t, res.NC)
			require.NotNil(t, res.JS)
			require.NotNil(t, res.Topology)
			require.NotNil(t, res.View)
			require.NotNil(t, res.Telemetry)
			require.Equal(t, tt.pg, res.Pool != nil, "PostgreSQL only for the roles that need it")
			require.Equal(t, res.Has(worker.RoleWatchdog), res.Rollups != nil)
			if res.Has(worker.RoleReplay) {
				_, err := n.JS.Consumer(ctx, topology.StreamDLQ, topology.ConsumerReplayIngest)
				require.NoError(t, err, "the replay topology exists")
			}

			var roles []started
			var checks []telemetry.Check
			for _, r := range tt.roles {
				s, err := starters[r](ctx, res)
				require.NoError(t, err, r.String())
				roles = append(roles, s)
				checks = append(checks, s.Checks()...)
			}
			addr, err := res.ServeHealth(checks...)
			require.NoError(t, err)
			base := "http://" + addr.String()
			code, _ := get(t, base+"/healthz")
			require.Equal(t, http.StatusOK, code)
			code, body := get(t, base+"/readyz")
			require.Equal(t, http.StatusOK, code, body)
			_, body = get(t, base+"/metrics")
			for _, m := range tt.metrics {
				require.Contains(t, body, m)
			}

			for i := len(roles) - 1; i >= 0; i-- {
				sctx, cancel := context.WithTimeout(ctx, stopBound)
				require.NoError(t, roles[i].Stop(sctx))
				require.NoError(t, roles[i].Stop(sctx), "a second Stop is a no-op")
				cancel()
			}
			require.NoError(t, res.Close(ctx))
			require.True(t, res.NC.IsClosed(), "NATS closed")
			if res.Pool != nil {
				require.Error(t, res.Pool.Ping(ctx), "the pool is closed")
			}
			_, err = net.DialTimeout("tcp", addr.String(), time.Second)
			require.Error(t, err, "the health endpoint is closed")
			require.NoError(t, res.Close(ctx), "a second Close is a no-op")
		})
	}
}

func TestOpenFailsInOneLine(t *testing.T) {
	t.Parallel()
	n := testenv.NATS(t)
	replayOnly := []worker.Role{worker.RoleReplay}
	tests := []struct {
		name  string
		pc    process.Config
		opts  worker.Options
		is    error
		wants []string
	}{
		{"NATS unreachable", config("nats://127.0.0.1:1", ""),
			worker.Options{Name: "t", Roles: []worker.Role{worker.RoleBreaker}, StartTimeout: 2 * time.Second},
			process.ErrUnreachable, []string{"NATS"}},
		{"PostgreSQL unreachable", config(n.URL, "postgres://postgres:secret@127.0.0.1:1/x?connect_timeout=2"),
			worker.Options{Name: "t", Roles: replayOnly, AuditKey: testenv.AuditKey}, process.ErrUnreachable, []string{"PostgreSQL"}},
		{"malformed database URL", config(n.URL, "postgres://x:y@[::1/"),
			worker.Options{Name: "t", Roles: replayOnly, AuditKey: testenv.AuditKey}, process.ErrInvalidConfig, []string{"--database-url"}},
		{"no database URL", config(n.URL, ""),
			worker.Options{Name: "t", Roles: []worker.Role{worker.RoleWatchdog}, AuditKey: testenv.AuditKey}, process.ErrInvalidConfig, []string{"--database-url"}},
		{"no audit key", config(n.URL, "postgres://x@127.0.0.1:1/x"),
			worker.Options{Name: "t", Roles: replayOnly}, process.ErrNoAuditKey, []string{"--audit-key-file"}},
		{"no name", config(n.URL, ""), worker.Options{Roles: replayOnly}, worker.ErrOptions, []string{"Name"}},
		{"no roles", config(n.URL, ""), worker.Options{Name: "t"}, worker.ErrOptions, []string{"Roles"}},
		{"unknown role", config(n.URL, ""), worker.Options{Name: "t", Roles: []worker.Role{9}}, worker.ErrOptions, []string{"Role(9)"}},
	}
	// The group returns once its parallel subtests are done.
	t.Run("group", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				res, err := worker.Open(t.Context(), tt.pc, tt.opts)
				require.ErrorIs(t, err, tt.is)
				require.Nil(t, res)
				require.NotContains(t, err.Error(), "\n", "one line")
				require.NotContains(t, err.Error(), "secret", "passwords are redacted")
				for _, want := range tt.wants {
					require.Contains(t, err.Error(), want)
				}
			})
		}
	})
	// What a failed Open connected is closed again: only the test's own
	// connection is left on the server.
	srv := n.Server.Server()
	require.Eventually(t, func() bool { return srv.NumClients() == 1 }, 5*time.Second, 10*time.Millisecond,
		"clients: %d", srv.NumClients())
}

func TestStartNeedsTheResourcesOfItsRole(t *testing.T) {
	t.Parallel()
	n := testenv.NATS(t)
	res, err := worker.Open(t.Context(), config(n.URL, ""), worker.Options{Name: "t", Roles: []worker.Role{worker.RoleBreaker}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Close(context.Background()) })

	_, err = worker.StartReplay(t.Context(), res, worker.ReplayConfig{})
	require.ErrorIs(t, err, worker.ErrNotOpened)
	require.Contains(t, err.Error(), "replay-worker")
	_, err = worker.StartWatchdog(t.Context(), res, watchdog.Config{})
	require.ErrorIs(t, err, worker.ErrNotOpened)
	require.Contains(t, err.Error(), "watchdog")
	_, err = worker.StartBreaker(t.Context(), nil, breaker.Config{})
	require.ErrorIs(t, err, worker.ErrNotOpened)
}

func TestServeHealthOnATakenAddressIsInvalidConfig(t *testing.T) {
	t.Parallel()
	n := testenv.NATS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	pc := config(n.URL, "")
	pc.HTTPAddr = ln.Addr().String()
	res, err := worker.Open(t.Context(), pc, worker.Options{Name: "t", Roles: []worker.Role{worker.RoleBreaker}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Close(context.Background()) })

	_, err = res.ServeHealth()
	require.ErrorIs(t, err, process.ErrInvalidConfig)
	require.Contains(t, err.Error(), ln.Addr().String())

	pc.HTTPAddr = ""
	res2, err := worker.Open(t.Context(), pc, worker.Options{Name: "t", Roles: []worker.Role{worker.RoleBreaker}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = res2.Close(context.Background()) })
	addr, err := res2.ServeHealth()
	require.NoError(t, err)
	require.Nil(t, addr, "no --http-addr, no endpoint")
}

// TestBreakerProcessPublishesRefusedValues checks Open's wiring of the view
// in a breaker-worker process: a refused config value becomes a rejected
// event.
func TestBreakerProcessPublishesRefusedValues(t *testing.T) {
	t.Parallel()
	n := testenv.NATS(t)
	ctx := t.Context()
	res, err := worker.Open(ctx, config(n.URL, ""), worker.Options{Name: "t", Roles: []worker.Role{worker.RoleBreaker}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Close(context.Background()) })

	_, err = res.Topology.ConfigKV.Put(ctx, "payments", []byte(`{"failure_threshold":-1}`))
	require.NoError(t, err)
	subj, err := events.RejectedSubject(events.RejectedConfig)
	require.NoError(t, err)
	stream, err := n.JS.Stream(ctx, topology.StreamEvents)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subj))
		return err == nil && info.State.Subjects[subj] == 1
	}, 10*time.Second, 10*time.Millisecond)
	msg, err := stream.GetLastMsgForSubject(ctx, subj)
	require.NoError(t, err)
	require.True(t, strings.Contains(string(msg.Data), "failure_threshold"), string(msg.Data))
}

// TestRunStopsOnCancel runs a breaker-worker as its binary does: Run
// returns nil once ctx ends (the signal) and the role has stopped.
func TestRunStopsOnCancel(t *testing.T) {
	t.Parallel()
	n := testenv.NATS(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var role *worker.Breaker
	err := worker.Run(ctx, config(n.URL, ""), worker.Options{Name: "t", Roles: []worker.Role{worker.RoleBreaker}},
		func(ctx context.Context, res *worker.Resources) (*worker.Breaker, error) {
			return worker.StartBreaker(ctx, res, breaker.Config{})
		}, stopBound, func(b *worker.Breaker) {
			role = b
			cancel() // as SIGTERM does
		})
	require.NoError(t, err)
	require.NotNil(t, role)
	require.Zero(t, role.Worker.Stats().Partitions, "the worker stopped and released its partitions")
}
