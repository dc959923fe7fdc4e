package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store/dbsqlc"
)

// AppendAuditEvent appends the audit record of the event whose ce-id is
// eventID, exactly once: when the event already has a record (a redelivery),
// nothing is written and that record is returned with appended false. The
// check and the append run in one transaction under the append lock, and a
// unique index on the event id backs them up. The record is chained like
// every other (AppendAudit); the event id is stored beside it, outside the
// hash.
func (s *Store) AppendAuditEvent(ctx context.Context, eventID string, r domain.AuditRecord) (rec domain.AuditRecord, appended bool, err error) {
	id, err := uuid.Parse(eventID)
	if err != nil {
		return domain.AuditRecord{}, false, fmt.Errorf("append audit record of event %q: %w: the event id is not a UUID", eventID, ErrInvalidArgument)
	}
	if r.Actor == "" || r.Action == "" {
		return domain.AuditRecord{}, false, fmt.Errorf("append audit record of event %s: %w: actor and action are required", id, ErrInvalidArgument)
	}
	if len(s.auditKey) == 0 {
		return domain.AuditRecord{}, false, fmt.Errorf("append audit record of event %s: %w", id, ErrNoAuditKey)
	}
	eventID = id.String()
	err = s.inTx(ctx, func(q *dbsqlc.Queries) error {
		if r.At.IsZero() {
			r.At = s.now()
		}
		if err := q.LockAuditAppend(ctx, auditLockKey); err != nil {
			return fmt.Errorf("lock the audit log: %w", err)
		}
		have, err := q.AuditRecordByEventID(ctx, eventID)
		switch {
		case err == nil:
			rec = auditFromRow(have)
			return nil
		case !isNoRows(err):
			return fmt.Errorf("look up the record of the event: %w", err)
		}
		var prev *domain.AuditRecord
		last, err := q.LastAuditRecord(ctx)
		switch {
		case isNoRows(err):
		case err != nil:
			return fmt.Errorf("read the last audit record: %w", err)
		default:
			p := auditFromRow(last)
			prev = &p
		}
		if rec, err = domain.ChainAuditRecord(s.auditKey, prev, r); err != nil {
			return err
		}
		err = q.InsertAuditEventRecord(ctx, dbsqlc.InsertAuditEventRecordParams{
			Seq: rec.Seq, At: rec.At, Actor: rec.Actor, Action: rec.Action, Subject: rec.Subject,
			Reason: rec.Reason, Details: rec.Details, PrevHash: rec.PrevHash, Hash: rec.Hash, EventID: eventID,
		})
		if err != nil {
			return fmt.Errorf("insert audit record %d: %w", rec.Seq, err)
		}
		appended = true
		return nil
	})
	if err != nil {
		return domain.AuditRecord{}, false, fmt.Errorf("append audit record %q of event %s: %w", r.Action, eventID, err)
	}
	if appended {
		s.anchorAudit(ctx, rec)
	}
	return rec, appended, nil
}

// AuditRecordOfEvent returns the audit record of the event whose ce-id is
// eventID, or an error wrapping ErrNotFound.
func (s *Store) AuditRecordOfEvent(ctx context.Context, eventID string) (domain.AuditRecord, error) {
	id, err := uuid.Parse(eventID)
	if err != nil {
		return domain.AuditRecord{}, fmt.Errorf("audit record of event %q: %w", eventID, ErrNotFound)
	}
	row, err := s.q.AuditRecordByEventID(ctx, id.String())
	if isNoRows(err) {
		return domain.AuditRecord{}, fmt.Errorf("audit record of event %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return domain.AuditRecord{}, fmt.Errorf("audit record of event %s: %w", id, err)
	}
	return auditFromRow(row), nil
}
