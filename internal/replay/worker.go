package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/topology"
)

// Errors of the Worker.
var (
	// ErrWorkerDeps reports a dependency of New that is missing.
	ErrWorkerDeps = errors.New("replay: worker is missing a dependency")
	// ErrWorkerRunning reports a Start of a Worker that is already running.
	ErrWorkerRunning = errors.New("replay: worker already started")
)

// Deps are the connections and services a Worker runs on.
type Deps struct {
	// Store is the PostgreSQL store, built with store.WithRetryPolicy of the
	// Config's Retry. Required.
	Store *store.Store
	// NC is the NATS connection: replay deliveries and the DLQ endpoints.
	// Required.
	NC *nats.Conn
	// JS is a JetStream context on NC. Required.
	JS jetstream.JetStream
	// View is the local view of breakers, configs and governance
	// (FleetView(fleetstate.Watch(...))). Required unless replay is
	// disabled.
	View BreakerView
	// Clock is the time of every component; time.Now when nil.
	Clock func() time.Time
	// Logger receives the components' logs; slog.Default when nil.
	Logger *slog.Logger
}

// Component is a part of a Worker with a lifecycle: Ingest, Trigger (which
// runs the Engine's drains), API and Audit.
type Component interface {
	// Start begins the component's work in the background.
	Start(ctx context.Context) error
	// Stop ends it, gracefully until ctx ends.
	Stop(ctx context.Context) error
}

// Worker is a replay-worker: it ingests dead letters into PostgreSQL
// (Ingest), replays a service's backlog when its breaker closes (Trigger over
// Engine), serves the DLQ endpoints (API) and writes the audit log (Audit).
// Every part works on durable consumers or queue groups shared by all
// replay-workers, so any number of them can run side by side.
type Worker struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	ingest  *Ingest
	engine  *Engine
	trigger *Trigger
	api     *API

	mu      sync.Mutex
	running []namedComponent
	audit   *Audit
}

type namedComponent struct {
	name string
	c    Component
}

// New returns a Worker with cfg (zero fields take their defaults) over deps.
// It builds the components; Start runs them.
func New(cfg Config, deps Deps) (*Worker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var missing []string
	if deps.Store == nil {
		missing = append(missing, "store")
	}
	if deps.NC == nil {
		missing = append(missing, "NATS connection")
	}
	if deps.JS == nil {
		missing = append(missing, "JetStream")
	}
	if deps.View == nil && !cfg.DisableReplay {
		missing = append(missing, "fleet view")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %v", ErrWorkerDeps, missing)
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	w := &Worker{cfg: cfg, deps: deps, log: deps.Logger.With(slog.String("node", cfg.NodeID))}

	var err error
	if !cfg.DisableIngest {
		w.ingest, err = NewIngest(cfg.Ingest, IngestDeps{Store: deps.Store, JS: deps.JS, NodeID: cfg.NodeID, Clock: deps.Clock, Logger: w.log})
		if err != nil {
			return nil, err
		}
	}
	if !cfg.DisableReplay {
		ec := cfg.Engine
		if ec.Now == nil {
			ec.Now = deps.Clock
		}
		if ec.Logger == nil {
			ec.Logger = w.log
		}
		if w.engine, err = NewEngine(deps.Store, deps.NC, deps.JS, deps.View, ec); err != nil {
			return nil, err
		}
		if w.trigger, err = NewTrigger(w.engine, deps.JS, cfg.Trigger); err != nil {
			return nil, err
		}
	}
	if !cfg.DisableAPI {
		ac := cfg.API
		if ac.Node == "" {
			ac.Node = cfg.NodeID
		}
		if ac.Now == nil {
			ac.Now = deps.Clock
		}
		if ac.Logger == nil {
			ac.Logger = w.log
		}
		var r Replayer // nil when the engine is disabled: replay requests answer 503
		if w.engine != nil {
			r = w.engine
		}
		w.api = NewAPI(deps.NC, deps.Store, r, ac)
	}
	return w, nil
}

// Config returns the Worker's configuration, defaults filled in.
func (w *Worker) Config() Config { return w.cfg }

// Ingest returns the dead-letter ingest, or nil when it is disabled.
func (w *Worker) Ingest() *Ingest { return w.ingest }

// Engine returns the replay engine, or nil when replay is disabled.
func (w *Worker) Engine() *Engine { return w.engine }

// API returns the DLQ endpoints, or nil when they are disabled.
func (w *Worker) API() *API { return w.api }

// Start starts the components: the audit consumer first (so that nothing
// audit-worthy the others cause is missed), then ingest, the replay triggers
// and the DLQ endpoints. The consumers must exist (topology.EnsureReplay).
// When one fails to start, those already started are stopped and the error
// names the one that failed.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running != nil {
		return ErrWorkerRunning
	}
	var plan []namedComponent
	if !w.cfg.DisableAudit {
		cons, err := w.deps.JS.Consumer(ctx, topology.StreamEvents, topology.ConsumerAudit)
		if err != nil {
			return fmt.Errorf("replay: worker: bind consumer %s on %s: %w", topology.ConsumerAudit, topology.StreamEvents, err)
		}
		opts := w.cfg.Audit
		if opts.Logger == nil {
			opts.Logger = w.log
		}
		if opts.Clock == nil {
			opts.Clock = w.deps.Clock
		}
		if opts.Publisher == nil {
			opts.Publisher = w.deps.JS
		}
		w.audit = NewAudit(cons, w.deps.Store, opts)
		plan = append(plan, namedComponent{"audit", w.audit})
	}
	if w.ingest != nil {
		plan = append(plan, namedComponent{"ingest", w.ingest})
	}
	if w.trigger != nil {
		plan = append(plan, namedComponent{"replay trigger", w.trigger})
	}
	if w.api != nil {
		plan = append(plan, namedComponent{"DLQ endpoints", w.api})
	}
	started := make([]namedComponent, 0, len(plan))
	for _, nc := range plan {
		if err := nc.c.Start(ctx); err != nil {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.ShutdownTimeout)
			defer cancel()
			stopAll(stopCtx, started)
			return fmt.Errorf("replay: worker: start %s: %w", nc.name, err)
		}
		started = append(started, nc)
		w.log.LogAttrs(ctx, slog.LevelDebug, "replay-worker component started", slog.String("component", nc.name))
	}
	w.running = started
	w.log.LogAttrs(ctx, slog.LevelInfo, "replay-worker started", slog.Int("components", len(started)))
	return nil
}

// Stop stops the components in the reverse order of Start: the DLQ endpoints
// first (no new requests), then the drains (each hands its lease and its
// trigger back), ingest (the batches held are inserted and acked, or handed
// back when ctx ends) and the audit consumer last. Without a deadline on ctx,
// Config.ShutdownTimeout bounds the whole. Stop of a Worker that is not
// running returns nil.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.cfg.ShutdownTimeout)
		defer cancel()
	}
	err := stopAll(ctx, w.running)
	w.running = nil
	w.log.LogAttrs(ctx, slog.LevelInfo, "replay-worker stopped")
	return err
}

// stopAll stops cs in reverse order and joins their errors.
func stopAll(ctx context.Context, cs []namedComponent) error {
	var errs []error
	for i := len(cs) - 1; i >= 0; i-- {
		if err := cs[i].c.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("replay: worker: stop %s: %w", cs[i].name, err))
		}
	}
	return errors.Join(errs...)
}
