package store

import (
	"context"
	"fmt"
	"time"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store/dbsqlc"
)

// ExpireEntries moves up to limit entries whose expires_at has passed at now
// to expired (resolution ttl_expired), from the statuses the domain lets the
// watchdog expire (pending, requires_review, reviewing), and returns them.
// Entries being replayed are left to finish.
func (s *Store) ExpireEntries(ctx context.Context, now time.Time, limit int) ([]EntryRef, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("expire entries: %w: limit %d must be positive", ErrInvalidArgument, limit)
	}
	rows, err := s.q.ExpireEntries(ctx, dbsqlc.ExpireEntriesParams{
		Now: now, MaxRows: int32(min(limit, 1<<30)),
		FromStatuses: fromStatuses(domain.DLQActorWatchdog, domain.DLQExpired),
	})
	if err != nil {
		return nil, fmt.Errorf("expire entries: %w", err)
	}
	out := make([]EntryRef, len(rows))
	for i, r := range rows {
		out[i] = EntryRef{ID: r.ID, Service: r.Service}
	}
	return out, nil
}

// DeleteTerminal deletes at most limit terminal entries whose expires_at is
// before cutoff, oldest first, and returns how many it deleted: callers purge
// in small batches so that no statement holds many rows.
func (s *Store) DeleteTerminal(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("delete terminal entries: %w: limit %d must be positive", ErrInvalidArgument, limit)
	}
	n, err := s.q.DeleteExpiredTerminal(ctx, dbsqlc.DeleteExpiredTerminalParams{Cutoff: cutoff, MaxRows: int32(min(limit, 1<<30))})
	if err != nil {
		return 0, fmt.Errorf("delete terminal entries expired before %s: %w", cutoff, err)
	}
	return n, nil
}

// MarkSLABreached flags, at now, the pending entries of the failure domain
// created at or before createdBefore (now minus the domain's SLA) that are
// not flagged yet, and returns them.
func (s *Store) MarkSLABreached(ctx context.Context, d domain.FailureDomain, createdBefore, now time.Time) ([]EntryRef, error) {
	rows, err := s.q.MarkSLABreached(ctx, dbsqlc.MarkSLABreachedParams{
		Domain: string(d), CreatedBefore: createdBefore, Now: now,
	})
	if err != nil {
		return nil, fmt.Errorf("mark SLA breaches in %s: %w", d, err)
	}
	out := make([]EntryRef, len(rows))
	for i, r := range rows {
		out[i] = EntryRef{ID: r.ID, Service: r.Service}
	}
	return out, nil
}
