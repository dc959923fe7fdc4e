package store

import (
	"context"
	"fmt"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store/dbsqlc"
)

// auditLockKey is the transaction-scoped advisory lock that serializes audit
// appends ("baldur" and 2).
const auditLockKey int64 = 0x62616c6475720002

// auditPage is how many records VerifyAuditChain reads at a time.
const auditPage = 1000

// AppendAudit appends r to the audit log and returns it as stored: its Seq,
// PrevHash and Hash chained to the last record by domain.ChainAuditRecord,
// its time in UTC at microsecond precision (the store's clock when r.At is
// zero). Appends are serialized by an advisory lock held from reading the
// last record until the insert commits.
func (s *Store) AppendAudit(ctx context.Context, r domain.AuditRecord) (domain.AuditRecord, error) {
	if r.Actor == "" || r.Action == "" {
		return domain.AuditRecord{}, fmt.Errorf("append audit record: %w: actor and action are required", ErrInvalidArgument)
	}
	var out domain.AuditRecord
	err := s.inTx(ctx, func(q *dbsqlc.Queries) error {
		var err error
		out, err = s.appendAudit(ctx, q, r)
		return err
	})
	if err != nil {
		return domain.AuditRecord{}, fmt.Errorf("append audit record %q by %q: %w", r.Action, r.Actor, err)
	}
	return out, nil
}

// appendAudit appends r inside the caller's transaction.
func (s *Store) appendAudit(ctx context.Context, q *dbsqlc.Queries, r domain.AuditRecord) (domain.AuditRecord, error) {
	if r.At.IsZero() {
		r.At = s.now()
	}
	if err := q.LockAuditAppend(ctx, auditLockKey); err != nil {
		return domain.AuditRecord{}, fmt.Errorf("lock the audit log: %w", err)
	}
	var prev *domain.AuditRecord
	last, err := q.LastAuditRecord(ctx)
	switch {
	case isNoRows(err):
	case err != nil:
		return domain.AuditRecord{}, fmt.Errorf("read the last audit record: %w", err)
	default:
		p := auditFromRow(last)
		prev = &p
	}
	rec, err := domain.ChainAuditRecord(prev, r)
	if err != nil {
		return domain.AuditRecord{}, err
	}
	err = q.InsertAuditRecord(ctx, dbsqlc.InsertAuditRecordParams{
		Seq: rec.Seq, At: rec.At, Actor: rec.Actor, Action: rec.Action, Subject: rec.Subject,
		Reason: rec.Reason, Details: rec.Details, PrevHash: rec.PrevHash, Hash: rec.Hash,
	})
	if err != nil {
		return domain.AuditRecord{}, fmt.Errorf("insert audit record %d: %w", rec.Seq, err)
	}
	return rec, nil
}

// ListAudit returns up to limit audit records after afterSeq, in order; with
// a subject, only that subject's records.
func (s *Store) ListAudit(ctx context.Context, subject string, afterSeq int64, limit int) ([]domain.AuditRecord, error) {
	if limit <= 0 || limit > MaxListLimit {
		return nil, fmt.Errorf("list audit records: %w: limit %d outside 1..%d", ErrInvalidArgument, limit, MaxListLimit)
	}
	var (
		rows []dbsqlc.AuditLog
		err  error
	)
	if subject == "" {
		rows, err = s.q.ListAuditRecords(ctx, dbsqlc.ListAuditRecordsParams{AfterSeq: afterSeq, MaxRows: int32(limit)})
	} else {
		rows, err = s.q.ListAuditRecordsBySubject(ctx, dbsqlc.ListAuditRecordsBySubjectParams{
			Subject: subject, AfterSeq: afterSeq, MaxRows: int32(limit),
		})
	}
	if err != nil {
		return nil, fmt.Errorf("list audit records: %w", err)
	}
	out := make([]domain.AuditRecord, len(rows))
	for i, r := range rows {
		out[i] = auditFromRow(r)
	}
	return out, nil
}

// VerifyAuditChain reads the whole audit log in seq order, a page at a time,
// and verifies it with the domain's verifier. It returns nil for an intact
// (or empty) log, a *domain.AuditChainError naming the first bad seq (it
// wraps domain.ErrAuditChainBroken) when a row was modified, deleted or
// forged, or another error when the log cannot be read.
func (s *Store) VerifyAuditChain(ctx context.Context) error {
	var (
		anchor  domain.AuditRecord
		started bool
	)
	for {
		rows, err := s.q.ListAuditRecords(ctx, dbsqlc.ListAuditRecordsParams{AfterSeq: anchor.Seq, MaxRows: auditPage})
		if err != nil {
			return fmt.Errorf("verify audit chain: read records after seq %d: %w", anchor.Seq, err)
		}
		if len(rows) == 0 {
			return nil
		}
		recs := make([]domain.AuditRecord, len(rows))
		for i, r := range rows {
			recs[i] = auditFromRow(r)
		}
		if !started {
			err = domain.VerifyAuditChain(recs)
		} else {
			err = domain.VerifyAuditSegment(anchor, recs)
		}
		if err != nil {
			return err
		}
		started, anchor = true, recs[len(recs)-1]
		if len(rows) < auditPage {
			return nil
		}
	}
}

func auditFromRow(r dbsqlc.AuditLog) domain.AuditRecord {
	return domain.AuditRecord{
		Seq:      r.Seq,
		At:       r.At.UTC(),
		Actor:    r.Actor,
		Action:   r.Action,
		Subject:  r.Subject,
		Reason:   r.Reason,
		Details:  rawJSON(r.Details),
		PrevHash: r.PrevHash,
		Hash:     r.Hash,
	}
}
