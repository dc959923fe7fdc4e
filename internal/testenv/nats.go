package testenv

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/devstack"
)

// natsTimeout bounds starting a server or cluster and restarting a node.
const natsTimeout = 60 * time.Second

// NATSEnv is a single embedded nats-server with JetStream, private to one
// test, with a client connected to it.
type NATSEnv struct {
	// Server is the running server.
	Server *devstack.NATS
	// URL is the server's client URL.
	URL string
	// Conn is a connection to the server, closed when the test ends.
	Conn *nats.Conn
	// JS is a JetStream context on Conn.
	JS jetstream.JetStream
}

// NATS starts a fresh embedded nats-server with JetStream on a random port,
// storing under t.TempDir(), and connects to it. Connection and server are
// closed when the test ends.
func NATS(t testing.TB) *NATSEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), natsTimeout)
	defer cancel()
	srv, err := devstack.StartNATS(ctx, devstack.NATSOptions{
		Port:     devstack.RandomPort,
		StoreDir: filepath.Join(t.TempDir(), "jetstream"),
		Logger:   testLogger(t),
	})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	env := &NATSEnv{Server: srv, URL: srv.ClientURL()}
	env.Conn, env.JS = connect(t, env.URL)
	return env
}

// Connect opens another connection to the server, closed when the test ends.
func (e *NATSEnv) Connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, _ := connect(t, e.URL, opts...)
	return nc
}

// ClusterEnv is an embedded nats-server cluster with clustered JetStream,
// private to one test, with a client connected to all its nodes.
type ClusterEnv struct {
	// Cluster is the running cluster, for node control and inspection.
	Cluster *devstack.Cluster
	// URL lists every node's client URL, comma separated.
	URL string
	// Conn is a connection that fails over between the nodes, closed when
	// the test ends.
	Conn *nats.Conn
	// JS is a JetStream context on Conn.
	JS jetstream.JetStream
}

// NATSCluster starts a fresh n-node cluster on loopback (random ports, stores
// under t.TempDir()), waits until it has formed and JetStream has a meta
// leader, and connects to it. Everything is shut down when the test ends.
func NATSCluster(t testing.TB, n int) *ClusterEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), natsTimeout)
	defer cancel()
	c, err := devstack.StartCluster(ctx, devstack.ClusterOptions{
		Nodes:    n,
		StoreDir: t.TempDir(),
		Logger:   testLogger(t),
	})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(c.Shutdown)
	env := &ClusterEnv{Cluster: c, URL: c.ClientURL()}
	env.Conn, env.JS = connect(t, env.URL)
	return env
}

// Connect opens another connection to the cluster, closed when the test ends.
func (e *ClusterEnv) Connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, _ := connect(t, e.URL, opts...)
	return nc
}

// StopNode stops node i (failing the test if i is out of range).
func (e *ClusterEnv) StopNode(t testing.TB, i int) {
	t.Helper()
	if err := e.Cluster.StopNode(i); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// RestartNode restarts node i and waits until the cluster is ready again.
func (e *ClusterEnv) RestartNode(t testing.TB, i int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), natsTimeout)
	defer cancel()
	if err := e.Cluster.RestartNode(ctx, i); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// WaitReady waits until the running nodes are routed and follow a JetStream
// meta leader (for instance after StopNode).
func (e *ClusterEnv) WaitReady(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), natsTimeout)
	defer cancel()
	if err := e.Cluster.WaitReady(ctx); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// connect opens a connection that keeps reconnecting (nodes of a cluster may
// be stopped) and a JetStream context on it, both closed when the test ends.
func connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts = append([]nats.Option{
		nats.Name(t.Name()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
	}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("testenv: connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("testenv: JetStream context: %v", err)
	}
	return nc, js
}

// EnvTestNATSLog names the environment variable that, when set to a slog
// level ("debug", "info", "warn", "error"), sends the embedded servers' log at
// that level and above to the test log. Unset, the servers are silent: a
// cluster logs an error for every retry of a route to a stopped node.
const EnvTestNATSLog = "BALDUR_TEST_NATS_LOG"

// testLogger sends the servers' log to the test log (shown when the test fails
// or with -v), until the test's cleanup has run, when EnvTestNATSLog asks for it.
func testLogger(t testing.TB) *slog.Logger {
	var level slog.Level
	if v := os.Getenv(EnvTestNATSLog); v == "" || level.UnmarshalText([]byte(v)) != nil {
		return nil
	}
	h := &tbHandler{t: t, level: level, done: new(atomic.Bool)}
	// Registered before the server's shutdown, so it runs after it.
	t.Cleanup(func() { h.done.Store(true) })
	return slog.New(h)
}

// tbHandler is a slog.Handler writing to a test's log.
type tbHandler struct {
	t     testing.TB
	level slog.Level
	done  *atomic.Bool
	attrs []slog.Attr
}

// Enabled reports records at the chosen level and above.
func (h *tbHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

// Handle writes r to the test log unless the test is over.
func (h *tbHandler) Handle(_ context.Context, r slog.Record) error {
	if h.done.Load() {
		return nil
	}
	var b strings.Builder
	b.WriteString("nats-server: ")
	b.WriteString(r.Level.String())
	b.WriteString(" ")
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		b.WriteString(" ")
		b.WriteString(a.String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.t.Log(b.String())
	return nil
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *tbHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &tbHandler{t: h.t, level: h.level, done: h.done, attrs: append(slices.Clone(h.attrs), attrs...)}
}

// WithGroup ignores groups: the servers log none.
func (h *tbHandler) WithGroup(string) slog.Handler { return h }
