//go:build chaos

package chaos

import (
	"context"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/auditanchor"
	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
	"github.com/baldurfleet/baldur/internal/watchdog"
)

// stopWait bounds stopping a killed component: its connections are gone, so
// whatever it still tries fails fast.
const stopWait = 10 * time.Second

// proc is what every in-process worker has: a NATS connection through its
// own link, a fleet-state view on it, and how to end it.
type proc struct {
	h    *Harness
	name string
	// Link carries the worker's NATS connection.
	Link *Link
	nc   *nats.Conn
	js   jetstream.JetStream
	view *fleetstate.View
	dead atomic.Bool
	stop func(ctx context.Context) error
	// life is the context components that run until it ends are started
	// with; Stop and Kill end it.
	life context.Context
	end  context.CancelFunc
}

func (h *Harness) startProc(name string) *proc {
	h.tb.Helper()
	p := &proc{h: h, name: name, Link: NewNATSLink(h.tb, h.nodeAddrs...)}
	p.life, p.end = context.WithCancel(context.Background())
	nc, err := nats.Connect(p.Link.URL(),
		nats.Name(name),
		nats.IgnoreDiscoveredServers(), // every reconnect goes through the link
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectBufSize(-1), // nothing buffered while cut off is sent later
	)
	if err != nil {
		h.tb.Fatalf("chaos: %s: connect: %v", name, err)
	}
	p.nc = nc
	if p.js, err = jetstream.New(nc); err != nil {
		h.tb.Fatalf("chaos: %s: JetStream: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if p.view, err = fleetstate.Watch(ctx, p.js, fleetstate.WithLogger(slog.New(slog.DiscardHandler))); err != nil {
		h.tb.Fatalf("chaos: %s: watch the fleet state: %v", name, err)
	}
	h.tb.Cleanup(func() { p.Stop() })
	return p
}

// Name is the worker's node id.
func (p *proc) Name() string { return p.name }

// Dead reports whether the worker was killed or stopped.
func (p *proc) Dead() bool { return p.dead.Load() }

// View is the worker's fleet-state view.
func (p *proc) View() *fleetstate.View { return p.view }

// Stop stops the worker gracefully (it releases what it holds). It is a
// no-op on a dead worker.
func (p *proc) Stop() {
	if !p.dead.CompareAndSwap(false, true) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if p.stop != nil {
		if err := p.stop(ctx); err != nil {
			p.h.tb.Logf("chaos: %s: stop: %v", p.name, err)
		}
	}
	p.end()
	p.view.Stop()
	p.nc.Close()
}

// kill cuts the worker off abruptly, then reaps its goroutines: nothing it
// still had in flight reaches a server, and it releases nothing.
func (p *proc) kill(extra ...*Link) {
	if !p.dead.CompareAndSwap(false, true) {
		return
	}
	p.Link.Cut()
	for _, l := range extra {
		l.Cut()
	}
	p.nc.Close()
	p.view.Stop()
	if p.stop != nil {
		ctx, cancel := context.WithTimeout(context.Background(), stopWait)
		defer cancel()
		_ = p.stop(ctx) // fails: its connections are gone
	}
	p.end()
}

// BreakerWorker is an in-process breaker-worker (serving half-open permits)
// on a link of its own.
type BreakerWorker struct {
	*proc
	// Worker is the running worker.
	Worker *breaker.Worker
}

// StartBreakerWorker starts a breaker-worker named name; it is stopped when
// the test ends unless killed before.
func (h *Harness) StartBreakerWorker(name string, configure ...func(*breaker.Config)) *BreakerWorker {
	h.tb.Helper()
	p := h.startProc(name)
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	top, err := topology.Ensure(ctx, p.js, h.Top.Config) // buckets bound to the worker's connection
	if err != nil {
		h.tb.Fatalf("chaos: %s: topology: %v", name, err)
	}
	cfg := breaker.Config{
		Topology: top, Node: name, Configs: p.view, Governance: p.view, Conn: p.nc,
		Logger: h.logger(name),
	}
	for _, c := range configure {
		c(&cfg)
	}
	w, err := breaker.New(p.js, cfg)
	if err != nil {
		h.tb.Fatalf("chaos: %s: %v", name, err)
	}
	if err := w.Start(ctx); err != nil {
		h.tb.Fatalf("chaos: %s: start: %v", name, err)
	}
	p.stop = w.Stop
	return &BreakerWorker{proc: p, Worker: w}
}

// Kill kills the worker abruptly (see Link.Cut); another worker takes its
// partitions over once its leases expire.
func (w *BreakerWorker) Kill() { w.kill() }

// ArmCrashAfterWrite arms the worker's link to cut it between a breaker
// write (a put on baldur_breakers) and the next ack of an input message: the
// worker dies with its state written and its batch unacknowledged. fired is
// closed when the trap fires. The worker is reaped by Kill.
func (w *BreakerWorker) ArmCrashAfterWrite() (fired <-chan struct{}) {
	ch := make(chan struct{})
	var wrote atomic.Bool
	w.Link.Arm(func(subject string) bool {
		switch {
		case len(subject) > len(kvBreakers) && subject[:len(kvBreakers)] == kvBreakers:
			wrote.Store(true)
		case wrote.Load() && len(subject) > len(ackInput) && subject[:len(ackInput)] == ackInput:
			close(ch)
			return true
		}
		return false
	})
	return ch
}

const (
	kvBreakers = "$KV." + topology.BucketBreakers + "."
	ackInput   = "$JS.ACK." + topology.StreamInput + "."
)

// ReplayOptions tune a replay-worker started by the harness.
type ReplayOptions struct {
	// Configure, when set, adjusts the replay config last.
	Configure func(*replay.Config)
}

// ReplayWorker is an in-process replay-worker whose NATS connection and
// PostgreSQL pool each go through a link of their own.
type ReplayWorker struct {
	*proc
	// DBLink carries the worker's PostgreSQL connections.
	DBLink *Link
	// Worker is the running worker.
	Worker *replay.Worker
	pool   *pgxpool.Pool
}

// ChaosRetry is the retry policy of the harness's replay-workers: fast, so
// that retries and escalations happen within a scenario.
var ChaosRetry = domain.RetryPolicy{
	BaseDelay:        domain.Duration(50 * time.Millisecond),
	MaxDelay:         domain.Duration(400 * time.Millisecond),
	Multiplier:       2,
	Jitter:           0.2,
	NoResponderDelay: domain.Duration(200 * time.Millisecond),
}

// StartReplayWorker starts a replay-worker named name (ingest, replay with
// continuous drains every 300ms, a 2s replay lease, DLQ endpoints, audit);
// it is stopped when the test ends unless killed before.
func (h *Harness) StartReplayWorker(name string, opts ReplayOptions) *ReplayWorker {
	h.tb.Helper()
	p := h.startProc(name)
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	dbURL, err := url.Parse(h.DatabaseURL)
	if err != nil {
		h.tb.Fatalf("chaos: database URL: %v", err)
	}
	dbLink := NewTCPLink(h.tb, dbURL.Host)
	dbURL.Host = dbLink.Addr()
	pcfg, err := pgxpool.ParseConfig(dbURL.String())
	if err != nil {
		h.tb.Fatalf("chaos: %s: database URL: %v", name, err)
	}
	pcfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		h.tb.Fatalf("chaos: %s: pool: %v", name, err)
	}
	cfg := replay.Config{
		NodeID:  name,
		Engine:  replay.EngineConfig{LeaseTTL: 2 * time.Second, RequestTimeout: 2 * time.Second},
		Trigger: replay.TriggerConfig{ContinuousEvery: 300 * time.Millisecond},
		Retry:   ChaosRetry,
	}
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	cfg = cfg.WithDefaults()
	w, err := replay.New(cfg, replay.Deps{
		Store: store.New(pool, store.WithRetryPolicy(cfg.Retry), store.WithAuditKey(testenv.AuditKey),
			store.WithAuditAnchor(auditanchor.NewPublisher(p.js, h.logger(name)))),
		NC: p.nc, JS: p.js, View: replay.FleetView(p.view),
		Logger: h.logger(name),
	})
	if err != nil {
		h.tb.Fatalf("chaos: %s: %v", name, err)
	}
	// The worker runs until its life context ends: Stop or Kill.
	if err := w.Start(p.life); err != nil {
		h.tb.Fatalf("chaos: %s: start: %v", name, err)
	}
	rw := &ReplayWorker{proc: p, DBLink: dbLink, Worker: w, pool: pool}
	p.stop = func(ctx context.Context) error {
		err := w.Stop(ctx)
		closePool(pool)
		return err
	}
	return rw
}

// Kill kills the worker abruptly: its NATS and PostgreSQL links are cut at
// once, so a drain in progress stops mid-batch with its entries claimed and
// its lease held until the lease expires.
func (w *ReplayWorker) Kill() { w.kill(w.DBLink) }

// ArmCrashMidBatch arms the worker's NATS link to cut it, and its database
// link with it, when it sends the n-th replay delivery from now: the worker
// dies in the middle of a batch. fired is closed when the trap fires. The
// worker is reaped by Kill.
func (w *ReplayWorker) ArmCrashMidBatch(n int) (fired <-chan struct{}) {
	ch := make(chan struct{})
	var seen atomic.Int64
	w.Link.Arm(func(subject string) bool {
		if len(subject) < len(replayPrefix) || subject[:len(replayPrefix)] != replayPrefix {
			return false
		}
		if seen.Add(1) < int64(n) {
			return false
		}
		w.DBLink.Cut()
		close(ch)
		return true
	})
	return ch
}

const replayPrefix = "baldur.replay."

// closePool closes pool without waiting forever for connections a dead
// worker never releases.
func closePool(pool *pgxpool.Pool) {
	done := make(chan struct{})
	go func() {
		pool.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(stopWait):
	}
}

// Watchdog is an in-process watchdog (tick 200ms) on a link of its own,
// with a store on the scenario's database.
type Watchdog struct {
	*proc
	// Watchdog is the running watchdog.
	Watchdog *watchdog.Watchdog
}

// StartWatchdog starts a watchdog named name; it is stopped when the test
// ends unless killed before.
func (h *Harness) StartWatchdog(name string) *Watchdog {
	h.tb.Helper()
	p := h.startProc(name)
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	top, err := topology.Ensure(ctx, p.js, h.Top.Config)
	if err != nil {
		h.tb.Fatalf("chaos: %s: topology: %v", name, err)
	}
	pool, err := pgxpool.New(ctx, h.DatabaseURL)
	if err != nil {
		h.tb.Fatalf("chaos: %s: pool: %v", name, err)
	}
	wd, err := watchdog.New(watchdog.Config{Node: name, Tick: 200 * time.Millisecond, LeaseTTL: 2 * time.Second,
		Logger: h.logger(name)},
		watchdog.Deps{JS: p.js, Topology: top, Store: store.New(pool, store.WithAuditKey(testenv.AuditKey),
			store.WithAuditAnchor(auditanchor.NewPublisher(p.js, h.logger(name)))), Configs: p.view})
	if err != nil {
		h.tb.Fatalf("chaos: %s: %v", name, err)
	}
	if err := wd.Start(p.life); err != nil {
		h.tb.Fatalf("chaos: %s: start: %v", name, err)
	}
	p.stop = func(ctx context.Context) error {
		err := wd.Stop(ctx)
		closePool(pool)
		return err
	}
	return &Watchdog{proc: p, Watchdog: wd}
}

// Kill kills the watchdog abruptly.
func (w *Watchdog) Kill() { w.kill() }
