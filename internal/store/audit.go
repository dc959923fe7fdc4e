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

// AuditAnchor anchors the head of the audit log outside PostgreSQL. The store
// calls it after each commit that appended a record, with that record;
// failures are its to report (the record is committed either way, and the
// next head anchored covers it through the chain).
type AuditAnchor interface {
	AnchorAuditHead(ctx context.Context, rec domain.AuditRecord)
}

func (s *Store) anchorAudit(ctx context.Context, rec domain.AuditRecord) {
	if s.anchor != nil {
		s.anchor.AnchorAuditHead(ctx, rec)
	}
}

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
	s.anchorAudit(ctx, out)
	return out, nil
}

// appendAudit appends r inside the caller's transaction.
func (s *Store) appendAudit(ctx context.Context, q *dbsqlc.Queries, r domain.AuditRecord) (domain.AuditRecord, error) {
	if len(s.auditKey) == 0 {
		return domain.AuditRecord{}, ErrNoAuditKey
	}
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
	rec, err := domain.ChainAuditRecord(s.auditKey, prev, r)
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

// AuditReport is what a verification of the audit log read.
type AuditReport struct {
	// Records is the number of records verified.
	Records int64 `json:"records"`
	// LastSeq is the seq of the newest record, 0 for an empty log.
	LastSeq int64 `json:"last_seq"`
	// Anchors is the number of distinct heads the log was checked against.
	Anchors int `json:"anchors"`
	// AnchoredSeq is the highest anchored seq, 0 when no head was given.
	AnchoredSeq int64 `json:"anchored_seq"`
}

// VerifyAuditChain reads the whole audit log in seq order, a page at a time,
// verifies its keyed hash chain with the domain's verifier and checks it
// against anchors, the heads anchored outside PostgreSQL (nil: none): every
// anchored seq must hold the anchored hash and the log must reach the
// highest one. It returns what it read and nil for an intact (or empty) log,
// a *domain.AuditChainError naming the first bad seq (it wraps
// domain.ErrAuditChainBroken) when a row was modified, deleted, forged or
// re-hashed or the tail was cut, ErrNoAuditKey without a key, or another
// error when the log cannot be read.
func (s *Store) VerifyAuditChain(ctx context.Context, anchors *domain.AuditAnchors) (AuditReport, error) {
	if len(s.auditKey) == 0 {
		return AuditReport{}, fmt.Errorf("verify audit chain: %w", ErrNoAuditKey)
	}
	if anchors == nil {
		anchors = &domain.AuditAnchors{}
	}
	rep := AuditReport{Anchors: anchors.Len(), AnchoredSeq: anchors.MaxSeq()}
	var last domain.AuditRecord
	for {
		rows, err := s.q.ListAuditRecords(ctx, dbsqlc.ListAuditRecordsParams{AfterSeq: last.Seq, MaxRows: auditPage})
		if err != nil {
			return rep, fmt.Errorf("verify audit chain: read records after seq %d: %w", last.Seq, err)
		}
		recs := make([]domain.AuditRecord, len(rows))
		for i, r := range rows {
			recs[i] = auditFromRow(r)
		}
		if rep.Records == 0 {
			err = domain.VerifyAuditChain(s.auditKey, recs)
		} else {
			err = domain.VerifyAuditSegment(s.auditKey, last, recs)
		}
		if err != nil {
			return rep, err
		}
		for _, r := range recs {
			if err := anchors.Check(r); err != nil {
				return rep, err
			}
		}
		if len(recs) > 0 {
			last = recs[len(recs)-1]
			rep.Records += int64(len(recs))
			rep.LastSeq = last.Seq
		}
		if len(rows) < auditPage {
			return rep, anchors.CheckEnd(rep.LastSeq)
		}
	}
}

// LastAudit returns the newest audit record, and false for an empty log.
func (s *Store) LastAudit(ctx context.Context) (domain.AuditRecord, bool, error) {
	row, err := s.q.LastAuditRecord(ctx)
	if isNoRows(err) {
		return domain.AuditRecord{}, false, nil
	}
	if err != nil {
		return domain.AuditRecord{}, false, fmt.Errorf("read the last audit record: %w", err)
	}
	return auditFromRow(row), true, nil
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
