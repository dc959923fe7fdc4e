package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store/dbsqlc"
)

// EntryRef names an entry and its service, for the watchdog's reports.
type EntryRef struct {
	ID      string
	Service string
}

// ClaimBatch takes up to limit of the service's pending entries that are due
// at now, critical first and oldest first, and marks them replaying under the
// lease whose fencing token is token. Rows another claimer holds are skipped
// (FOR UPDATE SKIP LOCKED), so concurrent claimers never get the same entry.
// The entries are returned in replay order (domain.CompareDLQEntries).
//
// When token is not the service's current, unexpired lease nothing is claimed
// and the error wraps ErrLeaseLost. An empty result with a nil error means
// nothing is due.
func (s *Store) ClaimBatch(ctx context.Context, service string, token int64, limit int, now time.Time) ([]domain.DLQEntry, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("claim entries of %s: %w: limit %d must be positive", service, ErrInvalidArgument, limit)
	}
	if err := domain.CheckTransition(domain.DLQPending, domain.DLQReplaying); err != nil {
		return nil, fmt.Errorf("claim entries of %s: %w", service, err)
	}
	rows, err := s.q.ClaimBatch(ctx, dbsqlc.ClaimBatchParams{
		Service: service, FencingToken: token, Now: now, MaxRows: int32(min(limit, 1<<30)),
	})
	if err != nil {
		return nil, fmt.Errorf("claim entries of %s: %w", service, err)
	}
	return s.claimed(ctx, "claim entries", service, token, now, rows)
}

// ClaimEntries takes the given entries of the service for replay under the
// lease, for an operator's replay of chosen entries: each must be in a status
// from which the replay engine may claim (pending, requires_review or
// reviewing); the others, and rows another claimer holds, are left alone and
// absent from the result. Fenced like ClaimBatch.
func (s *Store) ClaimEntries(ctx context.Context, service string, token int64, ids []string, now time.Time) ([]domain.DLQEntry, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	for _, id := range ids {
		if _, err := uuid.Parse(id); err != nil {
			return nil, fmt.Errorf("claim entries of %s: %w: id %q is not a UUID", service, ErrInvalidArgument, id)
		}
	}
	rows, err := s.q.ClaimEntries(ctx, dbsqlc.ClaimEntriesParams{
		Service: service, FencingToken: token, Now: now, Ids: ids,
		FromStatuses: fromStatuses(domain.DLQActorReplay, domain.DLQReplaying),
	})
	if err != nil {
		return nil, fmt.Errorf("claim entries of %s: %w", service, err)
	}
	return s.claimed(ctx, "claim entries", service, token, now, rows)
}

// claimed converts claimed rows and, when there are none, tells an empty
// backlog from a lost lease.
func (s *Store) claimed(ctx context.Context, op, service string, token int64, now time.Time, rows []dbsqlc.DlqEntry) ([]domain.DLQEntry, error) {
	if len(rows) == 0 {
		if err := s.checkLease(ctx, service, token, now); err != nil {
			return nil, fmt.Errorf("%s of %s: %w", op, service, err)
		}
		return nil, nil
	}
	entries, err := entriesFromRows(rows)
	if err != nil {
		return nil, fmt.Errorf("%s of %s: %w", op, service, err)
	}
	slices.SortFunc(entries, domain.CompareDLQEntries)
	return entries, nil
}

// Complete marks an entry replayed (resolution auto_replay, resolved_at now)
// after its service answered ok. The entry must be replaying under token and
// token must be its service's current, unexpired lease; otherwise nothing is
// written and the error wraps ErrLeaseLost (or ErrNotFound).
func (s *Store) Complete(ctx context.Context, id string, token int64, now time.Time) error {
	done, err := s.CompleteBatch(ctx, []string{id}, token, now)
	if err != nil {
		return err
	}
	if len(done) == 0 {
		return s.fenced(ctx, "complete", id, token, now)
	}
	return nil
}

// CompleteBatch marks replayed, in one statement, those of the given entries
// that are replaying under token while token is their service's current,
// unexpired lease, and returns their ids; the others are left alone. When
// none qualifies the error says why for the first id: it wraps ErrLeaseLost
// (the lease is lost, or the entry is not replaying under token) or
// ErrNotFound.
func (s *Store) CompleteBatch(ctx context.Context, ids []string, token int64, now time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if err := domain.CheckTransition(domain.DLQReplaying, domain.DLQReplayed); err != nil {
		return nil, fmt.Errorf("complete entries: %w", err)
	}
	for _, id := range ids {
		if _, err := uuid.Parse(id); err != nil {
			return nil, fmt.Errorf("complete entries: %w: id %q is not a UUID", ErrInvalidArgument, id)
		}
	}
	done, err := s.q.CompleteEntries(ctx, dbsqlc.CompleteEntriesParams{Ids: ids, FencingToken: token, Now: now})
	if err != nil {
		return nil, fmt.Errorf("complete %d entries under token %d: %w", len(ids), token, err)
	}
	if len(done) == 0 && len(ids) > 1 {
		return nil, s.fenced(ctx, "complete", ids[0], token, now)
	}
	return done, nil
}

// Settled is a settled replay attempt: the entry as written and the outcome
// the domain decided.
type Settled struct {
	Entry   domain.DLQEntry
	Outcome domain.AttemptOutcome
}

// Settle writes what a replay attempt did to an entry, as decided by the
// store's retry policy (domain.RetryPolicy.Settle): replayed, back to pending
// with a backoff and the error recorded, or requires_review. The entry is
// row-locked and must be replaying under token while token is its service's
// current, unexpired lease at a.At; otherwise nothing is written and the
// error wraps ErrLeaseLost (or ErrNotFound).
func (s *Store) Settle(ctx context.Context, id string, token int64, a domain.Attempt) (Settled, error) {
	return s.SettleWith(ctx, s.policy, id, token, a)
}

// SettleWith is Settle with the given retry policy (a service's own).
func (s *Store) SettleWith(ctx context.Context, p domain.RetryPolicy, id string, token int64, a domain.Attempt) (Settled, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Settled{}, fmt.Errorf("settle entry %q: %w", id, ErrNotFound)
	}
	var out Settled
	lost := false
	err := s.inTx(ctx, func(q *dbsqlc.Queries) error {
		row, err := q.LockClaimedEntry(ctx, dbsqlc.LockClaimedEntryParams{ID: id, FencingToken: token, Now: a.At})
		if isNoRows(err) {
			lost = true
			return nil
		}
		if err != nil {
			return err
		}
		entry, err := entryFromRow(row)
		if err != nil {
			return err
		}
		outcome, err := p.Settle(entry, a)
		if err != nil {
			return err
		}
		appendErrors := []byte("[]")
		if outcome.AppendError != nil {
			if appendErrors, err = json.Marshal([]domain.ErrorRecord{*outcome.AppendError}); err != nil {
				return err
			}
		}
		patched := outcome.Patch(entry)
		patched.UpdatedAt = a.At.UTC()
		err = q.ApplyAttemptOutcome(ctx, dbsqlc.ApplyAttemptOutcomeParams{
			ID:                id,
			Status:            string(patched.Status),
			RetryCount:        int32(patched.RetryCount),
			LastRetryAt:       toPtr(patched.LastRetryAt),
			NextAttemptAt:     toPtr(patched.NextAttemptAt),
			LastError:         patched.LastError,
			ResolutionType:    string(patched.ResolutionType),
			RecommendedAction: string(patched.RecommendedAction),
			ResolvedAt:        toPtr(patched.ResolvedAt),
			AppendErrors:      appendErrors,
			Now:               a.At,
		})
		if err != nil {
			return err
		}
		out = Settled{Entry: patched, Outcome: outcome}
		return nil
	})
	if err != nil {
		return Settled{}, fmt.Errorf("settle entry %s under token %d: %w", id, token, err)
	}
	if lost {
		return Settled{}, s.fenced(ctx, "settle", id, token, a.At)
	}
	return out, nil
}

// Fail records a failed, retryable replay of an entry with the error the
// service gave: back to pending with the policy's backoff (jitter in [0, 1)),
// or requires_review once retry_count reaches max_retries. Fenced like
// Settle.
func (s *Store) Fail(ctx context.Context, id string, token int64, errText string, jitter float64, now time.Time) (Settled, error) {
	return s.Settle(ctx, id, token, domain.Attempt{Result: domain.AttemptFailed, Error: errText, At: now, Jitter: jitter})
}

// Escalate records a failed replay that goes to requires_review at once
// (recommended action escalate), as for a replay triggered by an operator's
// force-close. Fenced like Settle.
func (s *Store) Escalate(ctx context.Context, id string, token int64, errText string, now time.Time) (Settled, error) {
	return s.Settle(ctx, id, token, domain.Attempt{Result: domain.AttemptFailed, Error: errText, ForceClose: true, At: now})
}

// RescueExpired puts back to pending, due at now, every replaying entry whose
// claim's lease is no longer current at now (expired, released or taken by a
// newer token), and returns them. It spends no attempt. The watchdog calls it
// every tick.
func (s *Store) RescueExpired(ctx context.Context, now time.Time) ([]EntryRef, error) {
	if !domain.CanTransitionBy(domain.DLQActorWatchdog, domain.DLQReplaying, domain.DLQPending) {
		return nil, fmt.Errorf("rescue expired claims: %w", domain.CheckTransition(domain.DLQReplaying, domain.DLQPending))
	}
	rows, err := s.q.RescueExpired(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("rescue expired claims: %w", err)
	}
	out := make([]EntryRef, len(rows))
	for i, r := range rows {
		out[i] = EntryRef{ID: r.ID, Service: r.Service}
	}
	return out, nil
}

// fenced explains why a fenced write to entry id under token wrote nothing.
func (s *Store) fenced(ctx context.Context, op, id string, token int64, now time.Time) error {
	e, err := s.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if e.Status != domain.DLQReplaying || e.FencingToken != token {
		return fmt.Errorf("%s entry %s under token %d: %w: the entry is %s under token %d",
			op, id, token, ErrLeaseLost, e.Status, e.FencingToken)
	}
	if err := s.checkLease(ctx, e.Service, token, now); err != nil {
		return fmt.Errorf("%s entry %s: %w", op, id, err)
	}
	// The lease was lost and regained between the write and this check, or
	// the entry changed since: either way the write did not happen.
	return fmt.Errorf("%s entry %s under token %d: %w: the claim changed concurrently", op, id, token, ErrLeaseLost)
}

// fromStatuses lists the statuses from which actor may move an entry to
// `to`, as the domain's state machine says.
func fromStatuses(actor domain.DLQActor, to domain.DLQStatus) []string {
	var out []string
	for _, st := range domain.DLQStatuses {
		if domain.CanTransitionBy(actor, st, to) {
			out = append(out, string(st))
		}
	}
	return out
}
