//go:build chaos

package chaos

import (
	"context"
	"flag"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// EnvSeed names the environment variable holding the run's seed when the
// -seed flag is not given.
const EnvSeed = "BALDUR_CHAOS_SEED"

// EnvSummary names the environment variable that, when set to a file path,
// makes every scenario append its summary line to that file.
const EnvSummary = "BALDUR_CHAOS_SUMMARY"

// Wait bounds every wait of the harness on the fleet (the race detector
// and a cluster missing a node are slow).
const Wait = 60 * time.Second

var seedFlag = flag.Int64("seed", 0, "the chaos run's seed (0: $"+EnvSeed+", else drawn from the clock)")

var (
	seedOnce sync.Once
	runSeed  int64
)

// RunSeed returns the run's seed: the -seed flag, else $BALDUR_CHAOS_SEED,
// else one drawn from the clock. It is fixed for the life of the test binary;
// every scenario derives its own random source from it and its name, so a
// scenario replays the same way whatever else runs.
func RunSeed() int64 {
	seedOnce.Do(func() {
		switch {
		case *seedFlag != 0:
			runSeed = *seedFlag
		case os.Getenv(EnvSeed) != "":
			v, err := strconv.ParseInt(os.Getenv(EnvSeed), 10, 64)
			if err != nil {
				panic(fmt.Sprintf("chaos: $%s=%q is not an integer: %v", EnvSeed, os.Getenv(EnvSeed), err))
			}
			runSeed = v
		default:
			runSeed = time.Now().UnixNano() % 1_000_000_000
		}
	})
	return runSeed
}

// EnvLog names the environment variable that, set to a slog level ("debug",
// "info", "warn", "error"), sends the workers' logs at that level and above
// to standard error. Unset, they are discarded.
const EnvLog = "BALDUR_CHAOS_LOG"

// logger returns the logger of the component named name.
func (h *Harness) logger(name string) *slog.Logger {
	var level slog.Level
	if v := os.Getenv(EnvLog); v == "" || level.UnmarshalText([]byte(v)) != nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With(slog.String("node", name))
}

// Options shape a Harness; zero fields take the defaults below.
type Options struct {
	// Nodes is the cluster size; 3 by default.
	Nodes int
	// Partitions of BALDUR_INPUT; 8 by default.
	Partitions int
	// LeaseTTL of the breaker-workers' partition leases; 2s by default, so
	// that a killed worker's partitions are taken over quickly.
	LeaseTTL time.Duration
	// DatabaseURL is the PostgreSQL database to use, migrated; empty
	// creates a fresh one (testenv.PostgresURL).
	DatabaseURL string
}

// Harness is one scenario's world: a NATS cluster with the topology at
// replicas 3, a PostgreSQL database, the workers the scenario starts, its
// seeded random source, and the faults and violations it counted.
type Harness struct {
	tb   testing.TB
	name string
	seed int64

	randMu sync.Mutex
	rand   *rand.Rand

	// Cluster is the NATS cluster; Cluster.JS is a JetStream context on a
	// connection that fails over between its nodes.
	Cluster *testenv.ClusterEnv
	// JS is Cluster.JS.
	JS jetstream.JetStream
	// Top is the topology, its buckets bound to JS.
	Top *topology.Topology
	// DatabaseURL is the scenario's PostgreSQL database.
	DatabaseURL string
	// Store is a store on its own pool, for the checkers.
	Store *store.Store

	nodeAddrs []string

	lettersMu sync.Mutex
	letters   []*DeadLetters

	faults     atomic.Int64
	faultMu    sync.Mutex
	faultKinds map[string]int
	violMu     sync.Mutex
	violations []string
}

// New builds a scenario's world. name names the scenario in its summary
// line; everything is torn down when the test ends.
func New(tb testing.TB, name string, opts Options) *Harness {
	tb.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Partitions == 0 {
		opts.Partitions = 8
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = 2 * time.Second
	}
	seed := RunSeed()
	hash := fnv.New64a()
	_, _ = hash.Write([]byte(name))
	h := &Harness{
		tb: tb, name: name, seed: seed,
		rand:       rand.New(rand.NewPCG(uint64(seed), hash.Sum64())),
		faultKinds: map[string]int{},
	}
	tb.Logf("chaos: scenario %s, seed %d (repeat with %s=%d)", name, seed, EnvSeed, seed)

	h.Cluster = testenv.NATSCluster(tb, opts.Nodes)
	h.JS = h.Cluster.JS
	for _, u := range strings.Split(h.Cluster.URL, ",") {
		pu, err := url.Parse(strings.TrimSpace(u))
		if err != nil {
			tb.Fatalf("chaos: node URL %q: %v", u, err)
		}
		h.nodeAddrs = append(h.nodeAddrs, pu.Host)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	top, err := topology.Ensure(ctx, h.JS, topology.Config{Partitions: opts.Partitions, Replicas: opts.Nodes, LeaseTTL: opts.LeaseTTL})
	if err != nil {
		tb.Fatalf("chaos: topology: %v", err)
	}
	h.Top = top
	if _, err := topology.EnsureReplay(ctx, h.JS, top.Config); err != nil {
		tb.Fatalf("chaos: replay topology: %v", err)
	}

	h.DatabaseURL = opts.DatabaseURL
	if h.DatabaseURL == "" {
		h.DatabaseURL = testenv.PostgresURL(tb)
	}
	pool, err := pgxpool.New(ctx, h.DatabaseURL)
	if err != nil {
		tb.Fatalf("chaos: checker pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	h.Store = store.New(pool, store.WithAuditKey(testenv.AuditKey))
	return h
}

// Name is the scenario's name.
func (h *Harness) Name() string { return h.name }

// Seed is the run's seed.
func (h *Harness) Seed() int64 { return h.seed }

// NodeAddrs are the cluster nodes' client addresses (host:port), in node
// order; they stay the same across node restarts.
func (h *Harness) NodeAddrs() []string { return append([]string(nil), h.nodeAddrs...) }

// IntN returns a seeded random int in [0, n). It is safe for concurrent use,
// but only draws made in a fixed order replay the same way: draw from the
// scenario's own goroutine.
func (h *Harness) IntN(n int) int {
	h.randMu.Lock()
	defer h.randMu.Unlock()
	return h.rand.IntN(n)
}

// Perm returns a seeded random permutation of [0, n).
func (h *Harness) Perm(n int) []int {
	h.randMu.Lock()
	defer h.randMu.Unlock()
	return h.rand.Perm(n)
}

// Float64 returns a seeded random float in [0, 1).
func (h *Harness) Float64() float64 {
	h.randMu.Lock()
	defer h.randMu.Unlock()
	return h.rand.Float64()
}

// Duration returns a seeded random duration in [lo, hi).
func (h *Harness) Duration(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(h.IntN(int(hi-lo)))
}

// Fault counts one injected fault of kind and logs it with detail.
func (h *Harness) Fault(kind, detail string) {
	n := h.faults.Add(1)
	h.faultMu.Lock()
	h.faultKinds[kind]++
	h.faultMu.Unlock()
	h.tb.Logf("chaos: fault %d: %s: %s", n, kind, detail)
}

// Faults returns the number of faults injected so far.
func (h *Harness) Faults() int64 { return h.faults.Load() }

// FaultsOf returns the number of faults of kind injected so far.
func (h *Harness) FaultsOf(kind string) int {
	h.faultMu.Lock()
	defer h.faultMu.Unlock()
	return h.faultKinds[kind]
}

// Violation records a broken invariant. The scenario goes on (so that every
// violation is listed) and fails at Finish.
func (h *Harness) Violation(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.violMu.Lock()
	h.violations = append(h.violations, msg)
	h.violMu.Unlock()
	h.tb.Logf("chaos: VIOLATION: %s", msg)
}

// Violations returns the violations recorded so far.
func (h *Harness) Violations() []string {
	h.violMu.Lock()
	defer h.violMu.Unlock()
	return append([]string(nil), h.violations...)
}

// Totals are what a scenario moved, for its summary line.
type Totals struct {
	// Messages counts the messages the scenario published and had
	// acknowledged (reports, commands, dead letters, permit requests ...).
	Messages int64
	// Entries counts the dead-letter entries checked in PostgreSQL.
	Entries int64
}

// Summary returns the scenario's summary line.
func (h *Harness) Summary(t Totals) string {
	return fmt.Sprintf("scenario=%s seed=%d faults=%d messages=%d entries=%d violations=%d",
		h.name, h.seed, h.Faults(), t.Messages, t.Entries, len(h.Violations()))
}

// Finish prints the summary line (to standard output, the test log and the
// file named by $BALDUR_CHAOS_SUMMARY) and fails the test when any
// invariant was violated.
func (h *Harness) Finish(t Totals) {
	h.tb.Helper()
	line := h.Summary(t)
	fmt.Println(line)
	h.tb.Log(line)
	if path := os.Getenv(EnvSummary); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, _ = fmt.Fprintln(f, line)
			_ = f.Close()
		}
	}
	if v := h.Violations(); len(v) > 0 {
		h.tb.Errorf("chaos: %d invariant violations in scenario %s (seed %d):\n  %s", len(v), h.name, h.seed, strings.Join(v, "\n  "))
	}
}

// Until polls cond every `every` until it holds or timeout passes, and
// reports whether it held. For waits on real servers only.
func (h *Harness) Until(timeout, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

// Connect opens a connection straight to the cluster (failing over between
// its nodes), closed when the test ends.
func (h *Harness) Connect(name string) *nats.Conn {
	return h.Cluster.Connect(h.tb, nats.Name(name))
}

// Client connects an SDK client for node on a connection of its own, closed
// when the test ends.
func (h *Harness) Client(node string, opts ...baldur.Option) *baldur.Client {
	h.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	opts = append([]baldur.Option{baldur.WithNodeID(node), baldur.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	c, err := baldur.Connect(ctx, h.Connect(node), opts...)
	if err != nil {
		h.tb.Fatalf("chaos: SDK client %s: %v", node, err)
	}
	h.tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Wait)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// SetConfig stores svc's breaker config (raw JSON) in baldur_config.
func (h *Harness) SetConfig(svc, raw string) {
	h.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if _, err := h.Top.ConfigKV.Put(ctx, svc, []byte(raw)); err != nil {
		h.tb.Fatalf("chaos: config of %s: %v", svc, err)
	}
}
