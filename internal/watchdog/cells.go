package watchdog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
)

// AuditActionBreakerArchived is the audit action of a cell-scoped breaker
// archived by reconciliation; the subject is "breaker:<name>" and the
// details hold the archived state.
const AuditActionBreakerArchived = "breaker.archived"

// CellsAuditor is what the cell reconciliation needs of *store.Store.
type CellsAuditor interface {
	AppendAudit(ctx context.Context, r domain.AuditRecord) (domain.AuditRecord, error)
}

// ReconcileResult is what one reconciliation did (the seed's
// {"archived": [...], "errors": [...]}).
type ReconcileResult struct {
	Archived []string
	Errors   []error
}

// Cells is the duty that reconciles cell-scoped breakers with the ring after
// the cells configuration (key "_cells" of baldur_config) changed: a breaker
// "<svc>--<cell>" whose cell is configured but no longer owns svc on the
// ring is archived — an audit record with its last state, then its key
// purged by compare-and-set on the revision that was read, so a breaker a
// worker wrote in between is left for the next reconciliation. No state
// transition is emitted (seed). Breakers without a configured cell are never
// touched, and nothing is archived while no cell owns keys.
type Cells struct {
	config, breakers jetstream.KeyValue
	audit            CellsAuditor
	actor            string
	log              *slog.Logger

	archived, failed atomic.Int64

	mu      sync.Mutex
	lastRev uint64
}

// NewCells returns the reconciliation duty over baldur_config and
// baldur_breakers; node is the audit actor.
func NewCells(config, breakers jetstream.KeyValue, audit CellsAuditor, node string, log *slog.Logger) (*Cells, error) {
	if config == nil || breakers == nil || audit == nil || node == "" {
		return nil, fmt.Errorf("%w: cells need the config and breaker buckets, an auditor and a node", ErrInvalidConfig)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cells{config: config, breakers: breakers, audit: audit, actor: node, log: log}, nil
}

// Name returns "cells".
func (c *Cells) Name() string { return "cells" }

// Archived returns the number of breakers archived so far; Failed the
// number of archive attempts that failed.
func (c *Cells) Archived() int64 { return c.archived.Load() }

// Failed returns the number of archive attempts that failed.
func (c *Cells) Failed() int64 { return c.failed.Load() }

// Run reconciles when the cells configuration changed since the last clean
// reconciliation.
func (c *Cells) Run(ctx context.Context, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.config.Get(ctx, domain.ConfigCellsKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("watchdog: cells: read %s: %w", domain.ConfigCellsKey, err)
	}
	if e.Revision() == c.lastRev {
		return nil
	}
	cfg, err := domain.ParseCellsConfig(e.Value())
	if err != nil {
		return fmt.Errorf("watchdog: cells: %w", err)
	}
	res, err := c.Reconcile(ctx, cfg, now)
	if err != nil {
		return err
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("watchdog: cells: %d breakers not archived: %w", len(res.Errors), errors.Join(res.Errors...))
	}
	c.lastRev = e.Revision()
	return nil
}

// Reconcile archives the breakers orphaned under cfg and returns them and
// the errors of those it could not archive.
func (c *Cells) Reconcile(ctx context.Context, cfg domain.CellsConfig, now time.Time) (ReconcileResult, error) {
	ring := cfg.Ring()
	if ring.Points() == 0 {
		return ReconcileResult{}, fmt.Errorf("watchdog: cells: %w: no cell is active or warming up, so nothing is archived", domain.ErrInvalidCell)
	}
	lister, err := c.breakers.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return ReconcileResult{}, nil
	}
	if err != nil {
		return ReconcileResult{}, fmt.Errorf("watchdog: cells: list breakers: %w", err)
	}
	var names []string
	for k := range lister.Keys() {
		if m := cfg.MapBreaker(ring, k); m.Orphaned {
			names = append(names, k)
		}
	}
	var res ReconcileResult
	for _, name := range names {
		if err := c.archive(ctx, cfg.MapBreaker(ring, name), name, now); err != nil {
			c.failed.Add(1)
			res.Errors = append(res.Errors, err)
			continue
		}
		c.archived.Add(1)
		res.Archived = append(res.Archived, name)
	}
	return res, nil
}

func (c *Cells) archive(ctx context.Context, m domain.CellMapping, name string, now time.Time) error {
	e, err := c.breakers.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("archive %s: read: %w", name, err)
	}
	details, err := json.Marshal(map[string]any{"service": m.Service, "cell": m.Cell, "owner": m.Owner,
		"revision": e.Revision(), "state": json.RawMessage(e.Value())})
	if err != nil || !json.Valid(e.Value()) {
		details, _ = json.Marshal(map[string]any{"service": m.Service, "cell": m.Cell, "owner": m.Owner, "revision": e.Revision()})
	}
	if _, err := c.audit.AppendAudit(ctx, domain.AuditRecord{At: now, Actor: c.actor, Action: AuditActionBreakerArchived,
		Subject: "breaker:" + name, Reason: fmt.Sprintf("cell %s no longer owns %s on the ring (owner %s)", m.Cell, m.Service, m.Owner),
		Details: details}); err != nil {
		return fmt.Errorf("archive %s: audit: %w", name, err)
	}
	if err := c.breakers.Purge(ctx, name, jetstream.LastRevision(e.Revision())); err != nil {
		return fmt.Errorf("archive %s at revision %d: %w", name, e.Revision(), err)
	}
	c.log.InfoContext(ctx, "cell breaker archived", slog.String("breaker", name), slog.String("owner", m.Owner))
	return nil
}
