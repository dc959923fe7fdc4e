package watchdog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
)

// AuditActionBreakerArchived is the audit action of a breaker archived by
// cell reconciliation or as idle (archive_idle); the subject is
// "breaker:<name>". The record is
// written by the replay-workers' audit consumer from the archived event the
// breaker-worker publishes (replay.AuditRecordFor), once per event.
const AuditActionBreakerArchived = replay.AuditActionBreakerPrefix + string(events.BreakerArchived)

// ReconcileResult is what one reconciliation did (the seed's
// {"archived": [...], "errors": [...]}).
type ReconcileResult struct {
	// Archived are the breakers an archive command was sent for.
	Archived []string
	// Errors are the commands that could not be sent.
	Errors []error
}

// Cells is the duty that reconciles cell-scoped breakers with the ring after
// the cells configuration (key "_cells" of baldur_config) changed: for a
// breaker "<svc>--<cell>" whose cell is configured but no longer owns svc on
// the ring it sends an archive command (trigger cell_unmapped) to
// baldur.control.<name>. The watchdog writes no breaker state: a
// breaker-worker applies the command by its rules — it deletes the key by
// compare-and-set and publishes baldur.event.breaker.<name>.archived, which
// the audit consumer records. Breakers without a configured cell are never
// touched (and a breaker-worker refuses to archive a name without a cell as
// cell_unmapped),
// and nothing is archived while no cell owns keys.
type Cells struct {
	config, breakers jetstream.KeyValue
	pub              jetstream.Publisher
	node             string
	log              *slog.Logger

	archived, failed atomic.Int64

	mu      sync.Mutex
	lastRev uint64
}

// NewCells returns the reconciliation duty over baldur_config and
// baldur_breakers; it publishes archive commands through pub with ce-source
// and actor node.
func NewCells(config, breakers jetstream.KeyValue, pub jetstream.Publisher, node string, log *slog.Logger) (*Cells, error) {
	if config == nil || breakers == nil || pub == nil || node == "" {
		return nil, fmt.Errorf("%w: cells need the config and breaker buckets, a publisher and a node", ErrInvalidConfig)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cells{config: config, breakers: breakers, pub: pub, node: node, log: log}, nil
}

// Name returns "cells".
func (c *Cells) Name() string { return "cells" }

// Archived returns the number of archive commands sent so far.
func (c *Cells) Archived() int64 { return c.archived.Load() }

// Failed returns the number of archive commands that could not be sent.
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
		return fmt.Errorf("watchdog: cells: %d archive commands not sent: %w", len(res.Errors), errors.Join(res.Errors...))
	}
	c.lastRev = e.Revision()
	return nil
}

// Reconcile sends an archive command for every breaker orphaned under cfg
// and returns them and the errors of the commands it could not send.
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
	subject, err := events.ControlSubject(name)
	if err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	cmd := events.BreakerCommand{Action: domain.ActionArchive, Trigger: domain.TriggerCellUnmapped, Actor: c.node,
		Reason: fmt.Sprintf("cell %s no longer owns %s on the ring (owner %s)", m.Cell, m.Service, m.Owner)}
	msg, err := events.NewMsg(subject, events.NewEnvelope(events.TypeControl, uuid.New(), c.node, now), cmd)
	if err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	if _, err := c.pub.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("archive %s: publish to %s: %w", name, subject, err)
	}
	c.log.InfoContext(ctx, "archive command sent", slog.String("breaker", name), slog.String("owner", m.Owner))
	return nil
}
