package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store/dbsqlc"
)

// LiveCount is what the store knows of the number of a service's live
// entries (status pending, replaying, requires_review or reviewing; see
// domain.DLQStatus.Live) without counting them: the exact count made at
// RecountedAt plus every entry InsertEntries inserted for the service since.
//
// Entries that leave the live statuses (replayed, closed, expired) are not
// subtracted, so Live runs ahead of the truth until the next RecountLive;
// it never runs behind it for entries inserted through the store.
type LiveCount struct {
	// Live is the estimate: at least the service's live entries.
	Live int64
	// RecountedAt is when the service's live entries were last counted
	// (RecountLive's now); zero when they never were, and then Live only
	// holds what was inserted since the counter row was made.
	RecountedAt time.Time
}

// LiveCounts returns the live counts of the given services, one cheap lookup
// per service, without counting entries. A service the store has no counter
// for is absent (never inserted, or not since the counter exists): recount
// it before trusting a zero.
func (s *Store) LiveCounts(ctx context.Context, services []string) (map[string]LiveCount, error) {
	if len(services) == 0 {
		return map[string]LiveCount{}, nil
	}
	rows, err := s.q.LiveCounts(ctx, services)
	if err != nil {
		return nil, fmt.Errorf("live counts of %d services: %w", len(services), err)
	}
	out := make(map[string]LiveCount, len(rows))
	for _, r := range rows {
		out[r.Service] = LiveCount{Live: r.Live, RecountedAt: fromPtr(r.RecountedAt)}
	}
	return out, nil
}

// RecountLive counts the live entries of each of the given services, sets
// their live counts to the result with RecountedAt now, and returns the
// counts (a service without entries counts 0).
//
// The counter rows are locked, in service order, before the count and until
// it is stored, so that an insert running at the same time is either in the
// count or added to it afterwards: none is lost. The count reads the
// service's live entries (an index-only scan of dlq_entries_live_service once
// the table is vacuumed): it costs in proportion to them, so call it when an
// estimate must be made exact, not on every batch.
func (s *Store) RecountLive(ctx context.Context, services []string, now time.Time) (map[string]int64, error) {
	svcs := slices.Clone(services)
	slices.Sort(svcs)
	svcs = slices.Compact(svcs)
	out := make(map[string]int64, len(svcs))
	if len(svcs) == 0 {
		return out, nil
	}
	err := s.inTx(ctx, func(q *dbsqlc.Queries) error {
		if err := q.EnsureLiveCounts(ctx, svcs); err != nil {
			return err
		}
		if err := q.LockLiveCounts(ctx, svcs); err != nil {
			return err
		}
		rows, err := q.RecountLiveCounts(ctx, dbsqlc.RecountLiveCountsParams{Services: svcs, Now: now})
		if err != nil {
			return err
		}
		for _, r := range rows {
			out[r.Service] = r.Live
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recount live entries of %d services: %w", len(svcs), err)
	}
	return out, nil
}

// StoredEntries returns the ids of those of entries that InsertEntries would
// skip as duplicates of stored rows: an entry with the same id, or a live
// entry of the same service with the same idempotency key. Duplicates within
// entries are not looked for; an entry whose id is not a UUID is never
// stored.
func (s *Store) StoredEntries(ctx context.Context, entries []domain.DLQEntry) ([]string, error) {
	p := dbsqlc.StoredEntryIDsParams{
		Ids:             make([]string, 0, len(entries)),
		Services:        make([]string, 0, len(entries)),
		IdempotencyKeys: make([]string, 0, len(entries)),
	}
	for _, e := range entries {
		id, err := uuid.Parse(e.ID)
		if err != nil {
			continue
		}
		p.Ids = append(p.Ids, id.String())
		p.Services = append(p.Services, e.Service)
		p.IdempotencyKeys = append(p.IdempotencyKeys, e.IdempotencyKey)
	}
	if len(p.Ids) == 0 {
		return nil, nil
	}
	ids, err := s.q.StoredEntryIDs(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("look up %d dead letters: %w", len(p.Ids), err)
	}
	return ids, nil
}
