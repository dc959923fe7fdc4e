package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store/dbsqlc"
)

// Change names who asks for an operator's status change and why. Both are
// required; they go into the audit record the change writes.
type Change struct {
	Actor  string
	Reason string
}

// Audit actions written by operator changes; the subject is "dlq:<id>".
const (
	AuditDLQRequeue = "dlq.requeue"
	AuditDLQReview  = "dlq.review"
	AuditDLQClose   = "dlq.close"
)

// Requeue puts an entry back to pending, due now, with a fresh set of
// attempts (retry_count 0; the error history is kept), from a status the
// operator may requeue from (requires_review, reviewing).
func (s *Store) Requeue(ctx context.Context, id string, c Change) (domain.DLQEntry, error) {
	return s.operatorChange(ctx, id, domain.DLQPending, AuditDLQRequeue, c, "",
		func(q *dbsqlc.Queries, p opParams) (dbsqlc.DlqEntry, error) {
			return q.RequeueEntry(ctx, dbsqlc.RequeueEntryParams{ID: id, Now: p.now, FromStatuses: p.from})
		})
}

// Review marks an entry as taken for review (reviewing), or hands it back
// (requires_review) when to is DLQRequiresReview.
func (s *Store) Review(ctx context.Context, id string, to domain.DLQStatus, c Change) (domain.DLQEntry, error) {
	if to != domain.DLQReviewing && to != domain.DLQRequiresReview {
		return domain.DLQEntry{}, fmt.Errorf("review entry %s: %w: status %q is neither reviewing nor requires_review",
			id, ErrInvalidArgument, to)
	}
	return s.operatorChange(ctx, id, to, AuditDLQReview, c, "",
		func(q *dbsqlc.Queries, p opParams) (dbsqlc.DlqEntry, error) {
			return q.SetEntryStatus(ctx, dbsqlc.SetEntryStatusParams{ID: id, Status: string(to), Now: p.now, FromStatuses: p.from})
		})
}

// Discard rejects an entry (rejected, resolution rejected); the reason is its
// resolution note.
func (s *Store) Discard(ctx context.Context, id string, c Change) (domain.DLQEntry, error) {
	return s.Close(ctx, id, domain.DLQRejected, c.Reason, c)
}

// Resolve marks an entry fixed by hand (resolved, resolution manual_fix) with
// a note.
func (s *Store) Resolve(ctx context.Context, id, note string, c Change) (domain.DLQEntry, error) {
	return s.Close(ctx, id, domain.DLQResolved, note, c)
}

// Close moves an entry to a terminal status an operator may choose
// (resolved, rejected, archived, permanently_failed) with the domain's
// default resolution for it and note as the resolution note.
func (s *Store) Close(ctx context.Context, id string, to domain.DLQStatus, note string, c Change) (domain.DLQEntry, error) {
	if !to.Terminal() {
		return domain.DLQEntry{}, fmt.Errorf("close entry %s: %w: status %q is not terminal", id, ErrInvalidArgument, to)
	}
	return s.operatorChange(ctx, id, to, AuditDLQClose, c, note,
		func(q *dbsqlc.Queries, p opParams) (dbsqlc.DlqEntry, error) {
			return q.CloseEntry(ctx, dbsqlc.CloseEntryParams{
				ID: id, Status: string(to), ResolutionType: string(domain.DefaultResolution(to)),
				ResolutionNote: note, Now: p.now, FromStatuses: p.from,
			})
		})
}

type opParams struct {
	now  time.Time
	from []string
}

// operatorChange locks the entry, checks that the domain lets an operator
// move it from its status to `to`, runs update (whose WHERE clause admits
// only that status) and appends the audit record, all in one transaction.
// Nothing is written when the entry does not exist (ErrNotFound) or the
// change is refused (ErrInvalidTransition).
func (s *Store) operatorChange(ctx context.Context, id string, to domain.DLQStatus, action string, c Change, note string,
	update func(*dbsqlc.Queries, opParams) (dbsqlc.DlqEntry, error)) (domain.DLQEntry, error) {
	op := fmt.Sprintf("move entry %s to %s", id, to)
	if c.Actor == "" || c.Reason == "" {
		return domain.DLQEntry{}, fmt.Errorf("%s: %w: actor and reason are required", op, ErrInvalidArgument)
	}
	if _, err := uuid.Parse(id); err != nil {
		return domain.DLQEntry{}, fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	now := s.now()
	var (
		out domain.DLQEntry
		rec domain.AuditRecord
	)
	err := s.inTx(ctx, func(q *dbsqlc.Queries) error {
		cur, err := q.LockEntry(ctx, id)
		if isNoRows(err) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		from := domain.DLQStatus(cur.Status)
		if err := domain.CheckTransition(from, to); err != nil {
			return err
		}
		if !domain.CanTransitionBy(domain.DLQActorOperator, from, to) {
			return fmt.Errorf("%w: %s → %s is not an operator's change", ErrInvalidTransition, from, to)
		}
		row, err := update(q, opParams{now: now, from: []string{string(from)}})
		if err != nil {
			return err
		}
		if out, err = entryFromRow(row); err != nil {
			return err
		}
		details, err := json.Marshal(map[string]string{
			"service": out.Service, "from": string(from), "to": string(to), "note": note,
		})
		if err != nil {
			return err
		}
		rec, err = s.appendAudit(ctx, q, domain.AuditRecord{
			At: now, Actor: c.Actor, Action: action, Subject: "dlq:" + id, Reason: c.Reason, Details: details,
		})
		return err
	})
	if err != nil {
		return domain.DLQEntry{}, fmt.Errorf("%s: %w", op, err)
	}
	s.anchorAudit(ctx, rec)
	return out, nil
}
