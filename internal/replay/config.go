package replay

import (
	"errors"
	"fmt"
	"time"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
)

// ErrInvalidConfig reports a Config or IngestConfig value out of range.
var ErrInvalidConfig = errors.New("replay: invalid config")

// Defaults of IngestConfig.
const (
	// DefaultIngestBatch is the most dead letters fetched and inserted at
	// once.
	DefaultIngestBatch = 1000
	// MaxIngestBatch bounds IngestConfig.Batch.
	MaxIngestBatch = 10_000
	// DefaultIngestMaxWait is how long a fetch waits for a batch to fill.
	DefaultIngestMaxWait = 100 * time.Millisecond
	// DefaultIngestWriters is the number of batches inserted concurrently.
	DefaultIngestWriters = 2
	// DefaultIngestMinBackoff and DefaultIngestMaxBackoff bound the pause
	// between two attempts to insert a batch while PostgreSQL fails.
	DefaultIngestMinBackoff = 100 * time.Millisecond
	DefaultIngestMaxBackoff = 5 * time.Second
	// DefaultIngestInsertTimeout bounds one attempt to insert a batch.
	DefaultIngestInsertTimeout = 15 * time.Second
	// DefaultMaxPendingPerService bounds the live entries of one service in
	// PostgreSQL (IngestConfig.MaxPendingPerService): about 2.5 GB of
	// entries with 1.5 KiB requests.
	DefaultMaxPendingPerService = 1_000_000
	// UnboundedPending as IngestConfig.MaxPendingPerService turns the bound
	// off.
	UnboundedPending = -1
	// DefaultPendingRecount is the least time between two exact counts of a
	// service's live entries while it is at its bound
	// (IngestConfig.PendingRecount).
	DefaultPendingRecount = time.Second
	// MaxPendingRecountAge is the oldest exact count of a service's live
	// entries the ingest trusts, however far from the bound: past it the
	// service is counted again, which catches entries stored by a path that
	// does not keep the count (an older release during a rolling upgrade).
	MaxPendingRecountAge = 10 * time.Minute
)

// The replay-worker's flag and environment variable that set
// IngestConfig.MaxPendingPerService; the reason of a backlog_full rejection
// names them.
const (
	FlagMaxPendingPerService = "ingest-max-pending-per-service"
	EnvMaxPendingPerService  = "BALDUR_INGEST_MAX_PENDING_PER_SERVICE"
)

// DefaultShutdownTimeout bounds a graceful stop of a Worker when the caller's
// context has no deadline.
const DefaultShutdownTimeout = 30 * time.Second

// IngestConfig tunes Ingest. Zero fields take the defaults above.
type IngestConfig struct {
	// Batch is the most dead letters fetched from BALDUR_DLQ and inserted in
	// one statement.
	Batch int
	// MaxWait is how long one fetch waits for Batch messages before it
	// returns what it has: the most a trickle of dead letters waits.
	MaxWait time.Duration
	// Writers is the number of batches inserted concurrently while the next
	// one is fetched.
	Writers int
	// MinBackoff and MaxBackoff bound the exponential pause between attempts
	// to insert a batch while PostgreSQL fails.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// InsertTimeout bounds one attempt to insert a batch.
	InsertTimeout time.Duration
	// MaxPendingPerService bounds the live entries (pending, replaying,
	// requires_review, reviewing) of one service in PostgreSQL. A dead
	// letter of a service at its bound is not stored: it is published to
	// baldur.event.rejected.dlq with code backlog_full, then terminated, and
	// counted in IngestStats.BacklogFull. Other services' dead letters, in
	// the same batch or not, are not affected, nor are the entries already
	// stored. Several writers inserting for the same service at once may
	// pass the bound by up to one batch each (see Ingest).
	// DefaultMaxPendingPerService when 0; UnboundedPending turns the bound
	// off.
	MaxPendingPerService int64
	// PendingRecount is the least time between two exact counts of a
	// service's live entries while the estimate says the service is at its
	// bound: the longest a service that made room may still see its dead
	// letters refused. DefaultPendingRecount when 0.
	PendingRecount time.Duration
}

// WithDefaults returns c with every zero field set to its default.
func (c IngestConfig) WithDefaults() IngestConfig {
	if c.Batch == 0 {
		c.Batch = DefaultIngestBatch
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultIngestMaxWait
	}
	if c.Writers == 0 {
		c.Writers = DefaultIngestWriters
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultIngestMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultIngestMaxBackoff
	}
	if c.InsertTimeout == 0 {
		c.InsertTimeout = DefaultIngestInsertTimeout
	}
	if c.MaxPendingPerService == 0 {
		c.MaxPendingPerService = DefaultMaxPendingPerService
	}
	if c.PendingRecount == 0 {
		c.PendingRecount = DefaultPendingRecount
	}
	return c
}

// Validate returns an error wrapping ErrInvalidConfig that names every field
// out of range, or nil. Zero fields are invalid: call WithDefaults first.
func (c IngestConfig) Validate() error {
	var errs []error
	if c.Batch < 1 || c.Batch > MaxIngestBatch {
		errs = append(errs, fmt.Errorf("ingest batch %d must be between 1 and %d", c.Batch, MaxIngestBatch))
	}
	if c.MaxWait < time.Millisecond || c.MaxWait > time.Minute {
		errs = append(errs, fmt.Errorf("ingest max wait %s must be between 1ms and 1m", c.MaxWait))
	}
	if c.Writers < 1 || c.Writers > 64 {
		errs = append(errs, fmt.Errorf("ingest writers %d must be between 1 and 64", c.Writers))
	}
	if c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff {
		errs = append(errs, fmt.Errorf("ingest backoff %s..%s must be positive and ordered", c.MinBackoff, c.MaxBackoff))
	}
	if c.InsertTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("ingest insert timeout %s must be at least 100ms", c.InsertTimeout))
	}
	if c.MaxPendingPerService < 1 && c.MaxPendingPerService != UnboundedPending {
		errs = append(errs, fmt.Errorf("ingest max pending per service %d must be at least 1, or %d for no bound", c.MaxPendingPerService, UnboundedPending))
	}
	if c.PendingRecount < time.Millisecond || c.PendingRecount > MaxPendingRecountAge {
		errs = append(errs, fmt.Errorf("ingest pending recount %s must be between 1ms and %s", c.PendingRecount, MaxPendingRecountAge))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

// Config configures a replay-worker. The zero value, after WithDefaults, is
// a working configuration except for NodeID.
type Config struct {
	// NodeID names this worker: ce-source of what it publishes and the
	// holder name of its replay leases. It is copied into Engine.Node.
	NodeID string
	// Ingest tunes the dead-letter ingest.
	Ingest IngestConfig
	// Engine tunes the replay engine (lease, batches, timeouts). Its clock
	// and logger come from the Worker's Deps when unset.
	Engine EngineConfig
	// Trigger tunes the consumer of CLOSED transitions that starts drains,
	// and the continuous drains.
	Trigger TriggerConfig
	// API tunes the DLQ endpoints; Node, clock and logger come from the
	// Worker when unset.
	API APIConfig
	// Audit tunes the audit consumer; publisher, clock and logger come from
	// the Worker when unset.
	Audit AuditOptions
	// Retry says when a failed replay is tried again; the Worker's store
	// should be built with it (store.WithRetryPolicy).
	Retry domain.RetryPolicy
	// DisableIngest, DisableReplay, DisableAPI and DisableAudit leave a
	// component out of the Worker (tests, or a fleet that splits the roles
	// across processes). Replay covers the engine and its trigger.
	DisableIngest bool
	DisableReplay bool
	DisableAPI    bool
	DisableAudit  bool
	// ShutdownTimeout bounds a graceful stop when the caller's context has no
	// deadline.
	ShutdownTimeout time.Duration
}

// DefaultConfig returns the defaults for node id.
func DefaultConfig(nodeID string) Config {
	return Config{NodeID: nodeID}.WithDefaults()
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.Ingest = c.Ingest.WithDefaults()
	if c.Engine.Node == "" {
		c.Engine.Node = c.NodeID
	}
	if c.Retry == (domain.RetryPolicy{}) {
		c.Retry = domain.DefaultRetryPolicy()
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	return c
}

// Validate returns an error wrapping ErrInvalidConfig that names every field
// out of range, or nil. Zero fields are invalid: call WithDefaults first.
func (c Config) Validate() error {
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("node id is required"))
	} else if len(c.NodeID) > events.MaxSourceLen {
		errs = append(errs, fmt.Errorf("node id is %d bytes, at most %d are allowed", len(c.NodeID), events.MaxSourceLen))
	}
	if err := c.Ingest.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !c.DisableReplay {
		if _, err := c.Engine.withDefaults(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.Retry.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout %s must be positive", c.ShutdownTimeout))
	}
	if len(errs) == 0 {
		return nil
	}
	if len(errs) == 1 && errors.Is(errs[0], ErrInvalidConfig) {
		return errs[0]
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}
