package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"

	"github.com/baldurfleet/baldur/db"
	"github.com/baldurfleet/baldur/internal/auditanchor"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/telemetry"
	"github.com/baldurfleet/baldur/internal/topology"
)

// Role is a kind of worker a process runs.
type Role uint8

// The roles.
const (
	// RoleBreaker is the breaker-worker: it needs NATS, the core topology
	// and the fleet-state view, whose refused values it publishes as
	// rejected events.
	RoleBreaker Role = iota + 1
	// RoleReplay is the replay-worker: it needs NATS, PostgreSQL, the core
	// and replay topology and the view.
	RoleReplay
	// RoleWatchdog is the watchdog: it needs NATS, PostgreSQL, the core and
	// watchdog topology and the view.
	RoleWatchdog
)

// String returns the role's binary name.
func (r Role) String() string {
	switch r {
	case RoleBreaker:
		return "breaker-worker"
	case RoleReplay:
		return "replay-worker"
	case RoleWatchdog:
		return "watchdog"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

func (r Role) needsPostgres() bool { return r == RoleReplay || r == RoleWatchdog }

// DefaultStartTimeout bounds Open's connecting, migrating and creating the
// topology when Options.StartTimeout is zero.
const DefaultStartTimeout = 30 * time.Second

// DefaultCloseTimeout bounds Close when its context has no deadline.
const DefaultCloseTimeout = 5 * time.Second

// Options configures Open.
type Options struct {
	// Name names the process: its telemetry service.name and, with the node
	// id, its NATS connection ("replay-worker <node-id>"). Required.
	Name string
	// Roles are the roles the process runs; Open opens what they need and
	// nothing more. At least one.
	Roles []Role
	// Topology configures the streams and buckets Open creates or checks;
	// a zero Replicas takes the process configuration's.
	Topology topology.Config
	// Logger receives the logs of the view, the NATS connection's errors and
	// the rejected-event publisher; nil discards them.
	Logger *slog.Logger
	// Getenv reads the OTEL_* environment; nil is os.Getenv.
	Getenv func(string) string
	// StartTimeout bounds connecting, migrating and creating the topology;
	// DefaultStartTimeout when zero.
	StartTimeout time.Duration
	// AuditKey is the key the audit log is chained with: required by the
	// roles that write it (RoleReplay, RoleWatchdog); see
	// process.LoadAuditKey.
	AuditKey domain.AuditKey
}

// Resources are what a process's roles share. Fields Open did not open for
// the roles are nil. Close releases everything.
type Resources struct {
	// Config is the process configuration Open was given.
	Config process.Config
	// Name is Options.Name.
	Name string
	// Log is Options.Logger (a discarding logger when nil).
	Log *slog.Logger
	// Telemetry holds the tracer and meter providers; its Metrics is served
	// at /metrics.
	Telemetry *telemetry.Provider
	// NC is the NATS connection, named after the process and node.
	NC *nats.Conn
	// JS is JetStream on NC.
	JS jetstream.JetStream
	// Pool is the PostgreSQL pool, migrated to the latest schema; nil
	// unless a role needs PostgreSQL.
	Pool *pgxpool.Pool
	// Topology is the core topology (streams, buckets, partitions).
	Topology *topology.Topology
	// Rollups is the watchdog's consumer of outcome reports; nil without
	// RoleWatchdog.
	Rollups jetstream.Consumer
	// View is the fleet-state view (breakers, configs, governance).
	View *fleetstate.View
	// Anchor publishes the audit log's head to BALDUR_AUDIT; nil unless a
	// role writes the audit log.
	Anchor *auditanchor.Publisher

	auditKey domain.AuditKey

	roles        []Role
	startTimeout time.Duration
	// life bounds the background work Open starts (rejected-event
	// publishes); cancelled at Close.
	life   context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	closers []func(ctx context.Context) error
}

// Open opens what opts.Roles need from pc: telemetry, NATS, PostgreSQL
// (when a role needs it; pc.DatabaseURL must then be set), the topology and
// the fleet-state view. ctx bounds the opening (with opts.StartTimeout). On
// failure what was opened is closed again and the error is one line: a
// telemetry failure wraps telemetry.ErrSetup, an unreachable NATS or
// PostgreSQL process.ErrUnreachable, a malformed --database-url
// process.ErrInvalidConfig.
func Open(ctx context.Context, pc process.Config, opts Options) (_ *Resources, err error) {
	if opts.Name == "" {
		return nil, fmt.Errorf("%w: Name is empty", ErrOptions)
	}
	if len(opts.Roles) == 0 {
		return nil, fmt.Errorf("%w: no Roles", ErrOptions)
	}
	for _, r := range opts.Roles {
		if r < RoleBreaker || r > RoleWatchdog {
			return nil, fmt.Errorf("%w: unknown role %s", ErrOptions, r)
		}
	}
	needPG := slices.ContainsFunc(opts.Roles, Role.needsPostgres)
	if needPG && pc.DatabaseURL == "" {
		return nil, fmt.Errorf("%w: --database-url ($%s) is required", process.ErrInvalidConfig, process.EnvDatabaseURL)
	}
	if needPG && len(opts.AuditKey) < domain.MinAuditKeyLen {
		return nil, process.MissingAuditKey()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.Topology.Replicas == 0 {
		opts.Topology.Replicas = pc.Replicas
	}
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &Resources{
		Config: pc, Name: opts.Name, Log: opts.Logger, roles: slices.Clone(opts.Roles),
		startTimeout: opts.StartTimeout, life: life, cancel: cancel, auditKey: opts.AuditKey,
	}
	defer func() {
		if err != nil {
			_ = r.Close(context.WithoutCancel(ctx))
			err = oneLineError{err}
		}
	}()

	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: opts.Name, NodeID: pc.NodeID, Getenv: opts.Getenv})
	if err != nil {
		return nil, err
	}
	r.Telemetry = tel
	r.onClose(tel.Shutdown)

	sctx, cancelStart := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancelStart()
	log := opts.Logger
	nc, err := pc.Connect(sctx, opts.Name+" "+pc.NodeID, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		log.Warn("NATS error", slog.Any("error", err))
	}))
	if err != nil {
		return nil, err
	}
	r.NC = nc
	r.onClose(func(ctx context.Context) error { return drain(ctx, nc) })
	if r.JS, err = jetstream.New(nc); err != nil {
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	if needPG {
		if r.Pool, err = openDatabase(sctx, pc.DatabaseURL); err != nil {
			return nil, err
		}
		r.onClose(func(context.Context) error { r.Pool.Close(); return nil })
	}
	if r.Topology, err = topology.Ensure(sctx, r.JS, opts.Topology); err != nil {
		return nil, err
	}
	if needPG {
		r.Anchor = auditanchor.NewPublisher(r.JS, log)
		// A head whose publish failed before a restart is anchored now.
		if err := auditanchor.AnchorLast(sctx, r.Store(), r.Anchor); err != nil {
			return nil, fmt.Errorf("anchor the audit log's head: %w", err)
		}
	}
	if r.Has(RoleReplay) {
		if _, err := topology.EnsureReplay(sctx, r.JS, r.Topology.Config); err != nil {
			return nil, err
		}
	}
	if r.Has(RoleWatchdog) {
		if r.Rollups, err = topology.EnsureWatchdog(sctx, r.JS, r.Topology.Config); err != nil {
			return nil, err
		}
	}
	watch := []fleetstate.Option{fleetstate.WithLogger(log)}
	if r.Has(RoleBreaker) {
		watch = append(watch, fleetstate.WithRejected(RejectedPublisher(life, r.JS, pc.NodeID, log)))
	}
	if r.View, err = fleetstate.Watch(sctx, r.JS, watch...); err != nil {
		return nil, fmt.Errorf("watch the fleet state: %w", err)
	}
	r.onClose(func(context.Context) error { r.View.Stop(); return nil })
	return r, nil
}

// Store returns a store over Pool that chains the audit log with the
// process's audit key and anchors its head through Anchor, with opts; nil
// without PostgreSQL.
func (r *Resources) Store(opts ...store.Option) *store.Store {
	if r.Pool == nil {
		return nil
	}
	base := []store.Option{store.WithAuditKey(r.auditKey)}
	if r.Anchor != nil {
		base = append(base, store.WithAuditAnchor(r.Anchor))
	}
	return store.New(r.Pool, append(base, opts...)...)
}

// Has reports whether Open opened the resources of role.
func (r *Resources) Has(role Role) bool { return slices.Contains(r.roles, role) }

// need fails with ErrNotOpened unless Open opened the resources of role.
func (r *Resources) need(role Role) error {
	if r == nil || !r.Has(role) {
		return fmt.Errorf("%w: %s (pass it in Options.Roles)", ErrNotOpened, role)
	}
	return nil
}

// meter returns the meter of component on the process's meter provider, so
// that a role's metrics are served at this process's /metrics whatever the
// global provider is.
func (r *Resources) meter(component string) metric.Meter {
	return r.Telemetry.Meter.Meter(telemetry.ScopeName + "/" + component)
}

// Health returns the handler of /healthz, /readyz and /metrics (see
// telemetry.Handler): readiness checks the NATS connection, PostgreSQL when
// opened, and checks (a running role's Checks).
func (r *Resources) Health(checks ...telemetry.Check) http.Handler {
	all := []telemetry.Check{telemetry.NATSCheck(r.NC)}
	if r.Pool != nil {
		all = append(all, telemetry.PostgresCheck(r.Pool))
	}
	return telemetry.Handler(r.Telemetry.Metrics(), append(all, checks...)...)
}

// ServeHealth serves Health(checks...) on the process's --http-addr until
// Close, and returns the address it listens on; with no --http-addr it serves
// nothing and returns nil. An address that cannot be listened on is an error
// wrapping process.ErrInvalidConfig that names it.
func (r *Resources) ServeHealth(checks ...telemetry.Check) (net.Addr, error) {
	if r.Config.HTTPAddr == "" {
		return nil, nil
	}
	srv, err := telemetry.Serve(r.Config.HTTPAddr, r.Health(checks...), r.Log)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", process.ErrInvalidConfig, err)
	}
	r.onClose(func(context.Context) error { srv.Close(); return nil })
	return srv.Addr(), nil
}

// Close releases everything in the reverse order of its opening: the health
// endpoint, the view, PostgreSQL, NATS (drained: buffered messages are
// flushed) and telemetry (flushed), within ctx, or DefaultCloseTimeout
// when ctx has no deadline. Stop the roles first. What fails is logged as a
// warning and returned, joined. It is safe to call more than once.
func (r *Resources) Close(ctx context.Context) error {
	r.mu.Lock()
	closers := r.closers
	r.closers = nil
	r.mu.Unlock()
	r.cancel()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCloseTimeout)
		defer cancel()
	}
	var errs []error
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i](ctx); err != nil {
			r.Log.Warn("not closed cleanly", slog.Any("error", err))
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *Resources) onClose(fn func(ctx context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closers = append(r.closers, fn)
}

// drain drains nc and waits until it is closed, closing it at once when ctx
// ends first.
func drain(ctx context.Context, nc *nats.Conn) error {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close() // already closed, or closing
		return nil
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		nc.Close()
		return fmt.Errorf("NATS connection not drained: %w", ctx.Err())
	}
}

// oneLineError is an error whose message is on one line: the lines of a
// joined or multi-line error (pgx lists every address it tried) are joined
// with "; ".
type oneLineError struct{ err error }

func (e oneLineError) Error() string {
	lines := strings.FieldsFunc(e.err.Error(), func(r rune) bool { return r == '\n' })
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, "; ")
}

func (e oneLineError) Unwrap() error { return e.err }

// openDatabase opens a pool on url with the query tracer, checks that
// PostgreSQL answers and migrates the schema to the latest version.
func openDatabase(ctx context.Context, url string) (*pgxpool.Pool, error) {
	where := process.Redact(url)
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%w: --database-url %s: %v", process.ErrInvalidConfig, where, err)
	}
	pcfg.ConnConfig.Tracer = telemetry.NewQueryTracer()
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("%w: --database-url %s: %v", process.ErrInvalidConfig, where, err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("%w: PostgreSQL at %s: %v", process.ErrUnreachable, where, err)
	}
	err = db.Migrate(ctx, conn.Conn())
	conn.Release() // before Close, which waits for every connection
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate PostgreSQL at %s: %w", where, err)
	}
	return pool, nil
}
