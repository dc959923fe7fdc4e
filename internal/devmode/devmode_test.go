package devmode_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/devmode"
	"github.com/baldurfleet/baldur/internal/devstack"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/testenv"
)

// storyBound is the most the demo's story may take in the test (with short
// phases, under the race detector, on a shared 2-core machine).
const storyBound = 90 * time.Second

// stopBound is how quickly the fleet must stop once asked.
const stopBound = 5 * time.Second

// output is a concurrency-safe io.Writer that signals when a line contains
// a given text.
type output struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	found chan struct{}
}

func newOutput(want string) *output { return &output{want: want, found: make(chan struct{})} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.buf.Write(p)
	if o.want != "" && strings.Contains(o.buf.String(), o.want) {
		o.want = ""
		close(o.found)
	}
	return n, err
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// testConfig is an ephemeral fleet on free ports over the test binary's
// PostgreSQL.
func testConfig(t *testing.T, out *output) devmode.Config {
	return devmode.Config{
		Ephemeral: true, NATSPort: devmode.RandomPort, HTTPAddr: "127.0.0.1:0",
		DatabaseURL: testenv.PostgresURL(t), NodeID: "t", Out: out,
	}
}

// requireStory waits for the demo's story and checks it was told whole.
func requireStory(t *testing.T, f *devmode.Fleet, out *output) {
	t.Helper()
	select {
	case <-f.Demo().Done():
	case <-time.After(storyBound):
		t.Fatalf("the story did not complete within %s; report %+v; output:\n%s", storyBound, f.Demo().Report(), out)
	}
	r := f.Demo().Report()
	require.GreaterOrEqual(t, r.Opened, 1, "the breaker never opened")
	require.GreaterOrEqual(t, r.HalfOpened, 1, "the breaker never half-opened")
	require.GreaterOrEqual(t, r.Closed, 1, "the breaker never closed")
	require.Positive(t, r.DeadLetters, "no dead letter piled up")
	require.Equal(t, r.DeadLetters, r.Replayed, "every dead letter is replayed")
	require.Zero(t, r.Counts[domain.DLQPending], "backlog drained to zero")
	require.Zero(t, r.Counts[domain.DLQReplaying])
	require.Equal(t, int64(r.DeadLetters), r.Counts[domain.DLQReplayed], "replayed entries == dead letters")
	require.Less(t, r.Took, storyBound)
	story := out.String()
	for _, want := range []string{"starts failing", "breaker OPEN", "has recovered", "breaker HALF_OPEN",
		"breaker CLOSED", "backlog drained to zero", "story complete", f.AdminURL(), "baldur dlq stats"} {
		require.Contains(t, story, want)
	}

}

func TestDemoTellsTheWholeStory(t *testing.T) {
	t.Parallel()
	out := newOutput("")
	cfg := testConfig(t, out)
	cfg.Demo = true
	cfg.DemoConfig = devmode.DemoConfig{HealthyFor: time.Second, OutageFor: time.Second, Progress: 200 * time.Millisecond}
	before := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f, err := devmode.Start(ctx, cfg)
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = f.Stop(context.Background())
		}
	})
	require.NotNil(t, f.Demo())

	requireStory(t, f, out)

	// Ctrl-C: the context ends, then Stop, as Run does.
	cancel()
	start := time.Now()
	require.NoError(t, f.Stop(context.Background()))
	stopped = true
	require.Less(t, time.Since(start), stopBound, "stop took too long")
	// No goroutine leak of note: what the fleet started is gone (a few
	// runtime and pool goroutines may take a moment to exit).
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= before+5 },
		stopBound, 50*time.Millisecond, "goroutines: %d before, %d after", before, runtime.NumGoroutine())
}

func TestRunStopsQuicklyOnCancel(t *testing.T) {
	t.Parallel()
	out := newOutput("Ctrl-C stops everything")
	cfg := testConfig(t, out)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- devmode.Run(ctx, cfg) }()
	select {
	case <-out.found:
	case err := <-done:
		t.Fatalf("Run returned before the fleet was up: %v\n%s", err, out)
	case <-time.After(storyBound):
		t.Fatalf("the fleet did not start within %s:\n%s", storyBound, out)
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(stopBound):
		t.Fatalf("Run did not return within %s of the cancel", stopBound)
	}
	require.Contains(t, out.String(), "stopped")
}

func TestTakenPortFailsClearly(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name  string
		set   func(*devmode.Config)
		wants []string
	}{
		{"nats port", func(c *devmode.Config) { c.NATSPort = port },
			[]string{"NATS port " + strconv.Itoa(port), "--nats-port"}},
		{"http addr", func(c *devmode.Config) { c.HTTPAddr = ln.Addr().String() },
			[]string{ln.Addr().String(), "--http-addr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := devmode.Config{Ephemeral: true, NATSPort: devmode.RandomPort, HTTPAddr: "127.0.0.1:0",
				DatabaseURL: "postgres://unused.invalid/x", Out: newOutput("")}
			tt.set(&cfg)
			start := time.Now()
			f, err := devmode.Start(t.Context(), cfg)
			require.ErrorIs(t, err, devmode.ErrPortTaken)
			require.Nil(t, f)
			require.Less(t, time.Since(start), 2*time.Second, "a taken port fails before anything slow starts")
			msg := err.Error()
			require.NotContains(t, msg, "\n", "one line")
			for _, want := range tt.wants {
				require.Contains(t, msg, want)
			}
		})
	}
}

func TestInvalidConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  devmode.Config
	}{
		{"port out of range", devmode.Config{NATSPort: 70000}},
		{"http addr without port", devmode.Config{HTTPAddr: "localhost"}},
		{"demo clients", devmode.Config{Demo: true, DemoConfig: devmode.DemoConfig{Clients: -1}}},
		{"demo failure rate", devmode.Config{Demo: true, DemoConfig: devmode.DemoConfig{FailureRate: 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := devmode.Start(t.Context(), tt.cfg)
			require.ErrorIs(t, err, devmode.ErrConfig)
		})
	}
}

// TestDemoFromAPrivateDirectory runs dev mode with its local PostgreSQL from
// a clone inside a 0700 directory, as `make run` in root's home does: the
// whole story is told, and as root the PostgreSQL data is kept where the
// postgres user can reach it, the data directory linking there and the
// banner saying so.
//
// It does not run in parallel: TestDemoTellsTheWholeStory counts the
// process's goroutines, which a second fleet beside it would change.
func TestDemoFromAPrivateDirectory(t *testing.T) {
	private := t.TempDir()
	require.NoError(t, os.Chmod(private, 0o700))
	dataDir := filepath.Join(private, "clone", ".baldur")
	t.Cleanup(func() {
		if target, err := os.Readlink(filepath.Join(dataDir, "pg")); err == nil {
			_ = os.RemoveAll(target)
		}
	})
	out := newOutput("")
	cfg := devmode.Config{DataDir: dataDir, NATSPort: devmode.RandomPort, HTTPAddr: "127.0.0.1:0", NodeID: "t", Out: out,
		Demo: true, DemoConfig: devmode.DemoConfig{HealthyFor: time.Second, OutageFor: time.Second, Progress: 200 * time.Millisecond}}
	f, err := devmode.Start(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Stop(context.Background()) })
	requireStory(t, f, out)
	require.DirExists(t, filepath.Join(dataDir, "nats"))

	target, err := os.Readlink(filepath.Join(dataDir, "pg"))
	if os.Geteuid() != 0 {
		require.Error(t, err, "a normal user's PostgreSQL keeps its data in place")
		require.DirExists(t, filepath.Join(dataDir, "pg", "data"))
		return
	}
	require.NoError(t, err, "as root the data directory links to the cluster")
	require.Equal(t, devstack.DefaultPostgresFallback, filepath.Dir(target))
	require.DirExists(t, filepath.Join(target, "data"))
	require.Contains(t, out.String(), "PostgreSQL data in "+target)
	require.Contains(t, out.String(), "where the postgres user can reach it")
	require.NoError(t, f.Stop(context.Background()))
}
