package watchdog

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/topology"
)

// Defaults of Config.
const (
	// DefaultTick is how often the active watchdog runs its duties.
	DefaultTick = 5 * time.Second
	// DefaultLeaseTTL is how long the leader lease lives without renewal. A
	// standby takes over at most about DefaultLeaseTTL + DefaultLeaseTTL/3
	// after the active watchdog died (and sooner when the bucket's own TTL
	// is shorter).
	DefaultLeaseTTL = 10 * time.Second
	// DefaultRetention is how long a terminal dead letter is kept after its
	// expires_at before it is deleted.
	DefaultRetention = 7 * 24 * time.Hour
	// DefaultRollupRetention is how long outcome rollups are kept: the
	// longest SLO window the error budget can be measured over, and a day.
	DefaultRollupRetention = domain.MaxSLOWindow + 24*time.Hour
	// RollupPruneEvery is how often the leader deletes older rollups.
	RollupPruneEvery = time.Hour
	// DefaultBatch is the most entries expired per statement.
	DefaultBatch = 500
	// DefaultMaxBatches bounds the expiry statements of one tick.
	DefaultMaxBatches = 20
	// DefaultResendAfter is how long the watchdog waits before it sends the
	// same command for the same breaker generation again.
	DefaultResendAfter = 30 * time.Second
	// DefaultIdleAfter is how long a breaker goes without activity before
	// the watchdog archives it.
	DefaultIdleAfter = 7 * 24 * time.Hour
	// MaxIdleArchivesPerTick bounds the archive commands one tick sends for
	// idle breakers (the longest idle first); the rest wait for the next
	// ticks.
	MaxIdleArchivesPerTick = 1000
	// LeaderKey is the key of the leader lease in baldur_partitions.
	LeaderKey = "watchdog.leader"
)

// Config configures a Watchdog. The zero value of every field but Node means
// its default.
type Config struct {
	// Node is this process's id: the lease holder and the ce-source of what
	// it publishes. Required.
	Node string
	// Tick is the interval of the duty loop; 0 means DefaultTick.
	Tick time.Duration
	// LeaseTTL is the leader lease's lifetime; 0 means DefaultLeaseTTL. The
	// lease is renewed every third of the shorter of LeaseTTL and the
	// baldur_partitions bucket's TTL, and the leader acts only while its last
	// renewal is younger than half that.
	LeaseTTL time.Duration
	// Retention is how long terminal entries are kept after their
	// expires_at; 0 means DefaultRetention.
	Retention time.Duration
	// RollupRetention is how long the per-minute outcome rollups are kept;
	// 0 means DefaultRollupRetention. It must cover the error budget's SLO
	// window.
	RollupRetention time.Duration
	// Batch is the most entries expired by one statement; 0 means
	// DefaultBatch.
	Batch int
	// MaxBatches bounds the expiry statements per tick; 0 means
	// DefaultMaxBatches.
	MaxBatches int
	// ResendAfter is how long a command for one breaker generation is not
	// sent again; 0 means DefaultResendAfter.
	ResendAfter time.Duration
	// IdleAfter is how long a breaker CLOSED in mode auto, with no manual
	// or override record, goes without activity (a report folded, a
	// command applied) before the watchdog sends it an archive command
	// (trigger idle); 0 means DefaultIdleAfter, a negative value turns idle
	// archival off. Otherwise it is within domain.MinIdlePeriod and
	// domain.MaxIdlePeriod.
	IdleAfter time.Duration
	// Clock is the duties' time (deadlines, SLA, expiry); nil is time.Now.
	// Lease timing always uses the monotonic wall clock.
	Clock func() time.Time
	// Logger receives the watchdog's logs; nil discards them.
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Tick == 0 {
		c.Tick = DefaultTick
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.RollupRetention == 0 {
		c.RollupRetention = DefaultRollupRetention
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	if c.MaxBatches == 0 {
		c.MaxBatches = DefaultMaxBatches
	}
	if c.ResendAfter == 0 {
		c.ResendAfter = DefaultResendAfter
	}
	if c.IdleAfter == 0 {
		c.IdleAfter = DefaultIdleAfter
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks c after WithDefaults.
func (c Config) Validate() error {
	switch {
	case c.Node == "":
		return fmt.Errorf("%w: Node is required", ErrInvalidConfig)
	case c.Tick < 10*time.Millisecond:
		return fmt.Errorf("%w: tick %s is below 10ms", ErrInvalidConfig, c.Tick)
	case c.LeaseTTL < 300*time.Millisecond:
		return fmt.Errorf("%w: lease TTL %s is below 300ms", ErrInvalidConfig, c.LeaseTTL)
	case c.Retention < 0:
		return fmt.Errorf("%w: retention %s is negative", ErrInvalidConfig, c.Retention)
	case c.RollupRetention < domain.MaxSLOWindow:
		return fmt.Errorf("%w: rollup retention %s is shorter than the longest SLO window (%s)", ErrInvalidConfig, c.RollupRetention, domain.MaxSLOWindow)
	case c.Batch < 1 || c.MaxBatches < 1:
		return fmt.Errorf("%w: batch %d and max batches %d must be positive", ErrInvalidConfig, c.Batch, c.MaxBatches)
	case c.ResendAfter <= 0:
		return fmt.Errorf("%w: resend-after %s must be positive", ErrInvalidConfig, c.ResendAfter)
	case c.IdleAfter > 0 && (c.IdleAfter < domain.MinIdlePeriod || c.IdleAfter > domain.MaxIdlePeriod):
		return fmt.Errorf("%w: idle-after %s: want %s..%s (--idle-after 0, a negative IdleAfter, turns idle archival off)", ErrInvalidConfig,
			c.IdleAfter, domain.MinIdlePeriod, domain.MaxIdlePeriod)
	}
	return nil
}

// Duty is one named unit of work the active watchdog runs every tick. Run
// gets the tick's time; an error is logged and counted and does not stop the
// other duties. A duty runs only while the watchdog holds a fresh lease, and
// never concurrently with itself.
type Duty interface {
	// Name names the duty in logs and Stats.
	Name() string
	// Run does the duty's work for the tick at now.
	Run(ctx context.Context, now time.Time) error
}

// DutyFunc adapts a function to Duty.
type DutyFunc struct {
	// DutyName is returned by Name.
	DutyName string
	// Fn is called by Run.
	Fn func(ctx context.Context, now time.Time) error
}

// Name returns d.DutyName.
func (d DutyFunc) Name() string { return d.DutyName }

// Run calls d.Fn.
func (d DutyFunc) Run(ctx context.Context, now time.Time) error { return d.Fn(ctx, now) }

// Store is the part of *store.Store the watchdog uses.
type Store interface {
	RescueExpired(ctx context.Context, now time.Time) ([]store.EntryRef, error)
	ExpireEntries(ctx context.Context, now time.Time, limit int) ([]store.EntryRef, error)
	DeleteTerminal(ctx context.Context, cutoff time.Time, limit int) (int64, error)
	PruneRollups(ctx context.Context, cutoff time.Time) (int64, error)
	MarkSLABreached(ctx context.Context, d domain.FailureDomain, createdBefore, now time.Time) ([]store.EntryRef, error)
	AppendAudit(ctx context.Context, r domain.AuditRecord) (domain.AuditRecord, error)
}

// ConfigSource resolves a service's breaker config; *fleetstate.View
// satisfies it.
type ConfigSource interface {
	Config(svc string) domain.Config
}

// Deps are the watchdog's connections.
type Deps struct {
	// JS publishes commands and events. Required.
	JS jetstream.JetStream
	// Topology gives the buckets baldur_breakers (watched), baldur_config
	// (key "_sla") and baldur_partitions (the lease). Required.
	Topology *topology.Topology
	// Store is the PostgreSQL repository. Required.
	Store Store
	// Configs resolves breaker configs (half_open_stuck_timeout). Required.
	Configs ConfigSource
	// Duties are extra duties run after the built-in ones, in order.
	Duties []Duty
}

func (d Deps) validate() error {
	switch {
	case d.JS == nil:
		return fmt.Errorf("%w: Deps.JS is required", ErrInvalidConfig)
	case d.Topology == nil || d.Topology.Breakers == nil || d.Topology.ConfigKV == nil || d.Topology.Partitions == nil:
		return fmt.Errorf("%w: Deps.Topology with its buckets is required (topology.Ensure)", ErrInvalidConfig)
	case d.Store == nil:
		return fmt.Errorf("%w: Deps.Store is required", ErrInvalidConfig)
	case d.Configs == nil:
		return fmt.Errorf("%w: Deps.Configs is required", ErrInvalidConfig)
	}
	for i, duty := range d.Duties {
		if duty == nil || duty.Name() == "" {
			return fmt.Errorf("%w: Deps.Duties[%d] is nil or has no name", ErrInvalidConfig, i)
		}
	}
	return nil
}
