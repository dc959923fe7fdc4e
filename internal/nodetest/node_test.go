package nodetest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/opsclient/opstest"
	"github.com/baldurfleet/baldur/internal/testenv"
)

const (
	// waitFor bounds every wait on the service and the fleet.
	waitFor = 60 * time.Second
	// installTimeout bounds `npm ci`.
	installTimeout = 5 * time.Minute
	// minNodeMajor is the oldest Node.js major version the example runs on.
	minNodeMajor = 18
	// svc is the dependency the example protects (its BALDUR_SERVICE).
	svc = "payments"
	// installHint says how to get Node.js and npm.
	installHint = "install Node.js 18 or newer and npm (Debian/Ubuntu: apt-get install -y nodejs npm); .ci/run installs them when node is missing"
)

// TestNodeExample runs examples/node/service.mjs against a breaker-worker and
// a replay-worker and follows its story: twelve charges whose outcomes it
// reports (folded into the breaker, which opens), a thirteenth refused
// locally and kept as a dead letter (ingested into PostgreSQL), then a
// force-close with trigger_replay after which the replay-worker delivers the
// dead letter to the Node handler and the entry is replayed. SIGTERM stops
// the service cleanly.
func TestNodeExample(t *testing.T) {
	t.Parallel()
	node := requireNode(t)
	dir := exampleDir(t)
	ensureDependencies(t, dir)

	fleet := opstest.NewFleet(t)
	fleet.StartBreakerWorker(t, "breaker-1")
	rw := fleet.StartReplayWorker(t, "replay-1")

	s := startService(t, node, dir, fleet.URL)
	s.next(t, "ready")

	// The reports were folded: the breaker holds exactly what the service
	// reported, and it opened.
	dl := s.next(t, "dead_letter")
	require.Equal(t, "13", dl.fields["order"])
	require.Equal(t, int64(4), s.successes, "successes the service reported")
	require.Equal(t, int64(8), s.failures, "failures the service reported")
	b := breakerState(t, fleet)
	require.Equal(t, domain.StateOpen, b.State)
	require.Equal(t, domain.ModeAuto, b.Mode)
	require.Equal(t, s.successes, b.Window.Successes, "successes folded")
	require.Equal(t, s.failures, b.Window.Failures, "failures folded")
	require.Equal(t, int64(8), b.ConsecutiveFailures, "trailing failures folded")
	require.Equal(t, 1, b.Window.FailingNodes)

	// The dead letter is in PostgreSQL, under the id the service gave it.
	id := dl.fields["id"]
	var entry domain.DLQEntry
	require.Eventually(t, func() bool {
		var err error
		entry, err = rw.Store.Get(context.Background(), id)
		return err == nil
	}, waitFor, 10*time.Millisecond, "dead letter %s never ingested", id)
	require.Equal(t, svc, entry.Service)
	require.Equal(t, domain.DLQPending, entry.Status)
	require.Equal(t, "charge", entry.Operation)
	require.Equal(t, "order-13-charge", entry.IdempotencyKey)
	require.JSONEq(t, `{"id":"13","amount":1999,"currency":"EUR"}`, string(entry.Request))

	// An operator force-closes the breaker with trigger_replay: the
	// replay-worker delivers the entry to the Node handler.
	msg, err := events.NewMsg(events.MustControlSubject(svc),
		events.NewEnvelopeRandomID(events.TypeControl, "nodetest", time.Now()),
		events.BreakerCommand{Action: domain.ActionClose, Actor: "nodetest", Reason: "provider back", TriggerReplay: true})
	require.NoError(t, err)
	_, err = fleet.NATS.JS.PublishMsg(ctx(t), msg)
	require.NoError(t, err)

	replayed := s.next(t, "replayed")
	require.Equal(t, id, replayed.fields["id"])
	require.Equal(t, "1", replayed.fields["attempt"])
	require.Equal(t, "13", replayed.fields["order"])
	require.Eventually(t, func() bool {
		e, err := rw.Store.Get(context.Background(), id)
		return err == nil && e.Status == domain.DLQReplayed
	}, waitFor, 10*time.Millisecond, "entry %s never marked replayed", id)
	b = breakerState(t, fleet)
	require.Equal(t, domain.StateClosed, b.State)
	require.Equal(t, domain.ModeForcedClosed, b.Mode)

	s.stop(t)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return c
}

// breakerState reads the service's breaker from baldur_breakers.
func breakerState(t *testing.T, fleet *opstest.Fleet) domain.Breaker {
	t.Helper()
	e, err := fleet.Topology.Breakers.Get(ctx(t), svc)
	require.NoError(t, err)
	var b domain.Breaker
	require.NoError(t, json.Unmarshal(e.Value(), &b))
	return b
}

// requireNode returns the path of node, failing the test with how to install
// it when it is missing or too old.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH: %s", installHint)
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v: %s", node, err, installHint)
	}
	v := strings.TrimSpace(string(out))
	major, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	if n, err := strconv.Atoi(major); err != nil || n < minNodeMajor {
		t.Fatalf("node %s is too old: %s", v, installHint)
	}
	return node
}

// exampleDir returns the example's directory.
func exampleDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "examples", "node"))
	require.NoError(t, err)
	return dir
}

// ensureDependencies runs `npm ci` in dir unless the nats package installed
// there is the version package-lock.json locks.
func ensureDependencies(t *testing.T, dir string) {
	t.Helper()
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &lock))
	locked := lock.Packages["node_modules/nats"].Version
	require.NotEmpty(t, locked, "package-lock.json locks no nats package")

	var installed struct {
		Version string `json:"version"`
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "node_modules", "nats", "package.json")); err == nil {
		_ = json.Unmarshal(raw, &installed)
	}
	if installed.Version == locked {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("the example's dependencies are not installed and npm is not on PATH: %s; then run `npm ci` in examples/node", installHint)
	}
	c, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := exec.CommandContext(c, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s (nats %s locked, %q installed): %v\n%s\nRun `npm ci` in examples/node by hand; it needs the npm registry.",
			dir, locked, installed.Version, err, out)
	}
}

// line is one line the service printed: an event, then key=value fields
// (values without spaces are all the test reads).
type line struct {
	event  string
	fields map[string]string
}

func parseLine(s string) line {
	words := strings.Fields(s)
	l := line{fields: map[string]string{}}
	if len(words) == 0 {
		return l
	}
	l.event = words[0]
	for _, w := range words[1:] {
		if k, v, ok := strings.Cut(w, "="); ok {
			l.fields[k] = v
		}
	}
	return l
}

// service is the running example.
type service struct {
	cmd    *exec.Cmd
	lines  chan line
	exited chan error
	stderr *testenv.Buffer
	// successes and failures add up the service's "reported" lines read so
	// far by next.
	successes, failures int64
}

// startService runs the example against url; it is killed, if still running,
// when the test ends.
func startService(t *testing.T, node, dir, url string) *service {
	t.Helper()
	cmd := exec.Command(node, "service.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NATS_URL="+url, "BALDUR_SERVICE="+svc, "BALDUR_NODE_ID=node-example-1")
	s := &service{cmd: cmd, lines: make(chan line), exited: make(chan error, 1), stderr: &testenv.Buffer{}}
	cmd.Stderr = s.stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	stop := make(chan struct{})
	go func() {
		defer func() { s.exited <- cmd.Wait() }()
		defer close(s.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			t.Logf("node: %s", sc.Text())
			select {
			case s.lines <- parseLine(sc.Text()):
			case <-stop:
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		_ = cmd.Process.Kill() // an error means it has exited already
		<-s.exited
		if s := s.stderr.String(); s != "" {
			t.Logf("node stderr:\n%s", s)
		}
	})
	return s
}

// next reads lines until one with event, adding up the reports on the way.
func (s *service) next(t *testing.T, event string) line {
	t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatalf("the node service ended before printing %q: %v", event, s.wait())
			}
			if l.event == "reported" {
				s.successes += atoi(t, l.fields["successes"])
				s.failures += atoi(t, l.fields["failures"])
			}
			if l.event == event {
				return l
			}
		case <-timeout:
			t.Fatalf("the node service printed no %q within %s", event, waitFor)
		}
	}
}

// stop sends SIGTERM and requires a clean exit.
func (s *service) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	s.next(t, "stopped")
	for range s.lines { // drain to the end of the output
	}
	require.NoError(t, s.wait(), "the node service's exit")
}

// wait returns the service's exit error once it has ended.
func (s *service) wait() error {
	select {
	case err := <-s.exited:
		s.exited <- err // for the cleanup
		if err != nil {
			return fmt.Errorf("%w; stderr:\n%s", err, s.stderr.String())
		}
		return nil
	case <-time.After(waitFor):
		return fmt.Errorf("still running after %s", waitFor)
	}
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	require.NoError(t, err, "number %q", s)
	return n
}
