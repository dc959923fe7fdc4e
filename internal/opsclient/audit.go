package opsclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/baldurfleet/baldur/internal/auditanchor"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store"
)

// Audit list bounds.
const (
	// DefaultAuditLimit is AuditList's page size when the query gives none.
	DefaultAuditLimit = 50
	// MaxAuditLimit bounds a page.
	MaxAuditLimit = 1000
)

// AuditQuery selects audit records: those after AfterSeq, of Subject when
// set (e.g. "breaker:payments", "dlq:<id>"), at most Limit.
type AuditQuery struct {
	Subject  string `json:"subject,omitempty"`
	AfterSeq int64  `json:"after_seq,omitempty"`
	Limit    int    `json:"limit,omitempty"`
}

// AuditList returns the audit records q selects, in sequence order.
func (c *Client) AuditList(ctx context.Context, q AuditQuery) ([]domain.AuditRecord, error) {
	if c.audit == nil {
		return nil, fmt.Errorf("%w: the audit log is in PostgreSQL; give --database-url", ErrNoDatabase)
	}
	if q.Limit == 0 {
		q.Limit = DefaultAuditLimit
	}
	if q.Limit < 0 || q.Limit > MaxAuditLimit {
		return nil, fmt.Errorf("%w: audit limit %d; want 1..%d", ErrInvalid, q.Limit, MaxAuditLimit)
	}
	if q.AfterSeq < 0 {
		return nil, fmt.Errorf("%w: audit after-seq %d is negative", ErrInvalid, q.AfterSeq)
	}
	recs, err := c.audit.ListAudit(ctx, q.Subject, q.AfterSeq, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("%w: list the audit log: %w", ErrUnreachable, err)
	}
	return recs, nil
}

// AuditVerification is what AuditVerify read: the log's records and the
// heads anchored in BALDUR_AUDIT it was checked against.
type AuditVerification struct {
	store.AuditReport
	// MalformedHeads counts messages of BALDUR_AUDIT that are not a valid
	// head (skipped; no writer publishes one).
	MalformedHeads int `json:"malformed_heads"`
}

// AuditVerify verifies the audit log: its keyed hash chain, and every head
// anchored in BALDUR_AUDIT — an anchored seq must hold the anchored hash
// and the log must reach the highest anchored seq. A broken chain, a
// rewritten record or a cut tail is an error wrapping ErrAuditBroken (and a
// *domain.AuditChainError naming the first bad seq); a store without the
// audit key is ErrNoAuditKey; an unreadable log or stream wraps
// ErrUnreachable. The verification is returned in every case, as far as it
// got.
func (c *Client) AuditVerify(ctx context.Context) (AuditVerification, error) {
	if c.audit == nil {
		return AuditVerification{}, fmt.Errorf("%w: the audit log is in PostgreSQL; give --database-url", ErrNoDatabase)
	}
	heads, err := auditanchor.Read(ctx, c.js)
	if err != nil {
		return AuditVerification{}, fmt.Errorf("%w: read the anchored audit heads: %w", ErrUnreachable, err)
	}
	rep, err := c.audit.VerifyAuditChain(ctx, &heads.Anchors)
	v := AuditVerification{AuditReport: rep, MalformedHeads: heads.Malformed}
	switch {
	case err == nil:
		return v, nil
	case errors.Is(err, domain.ErrAuditChainBroken):
		return v, fmt.Errorf("%w: %w", ErrAuditBroken, err)
	case errors.Is(err, ErrNoAuditKey):
		return v, err
	}
	return v, fmt.Errorf("%w: verify the audit log: %w", ErrUnreachable, err)
}
