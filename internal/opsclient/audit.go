package opsclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/baldurfleet/baldur/internal/domain"
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

// AuditVerify verifies the audit log's hash chain. A broken chain is an
// error wrapping ErrAuditBroken (and the store's *domain.AuditChainError);
// an unreadable log wraps ErrUnreachable.
func (c *Client) AuditVerify(ctx context.Context) error {
	if c.audit == nil {
		return fmt.Errorf("%w: the audit log is in PostgreSQL; give --database-url", ErrNoDatabase)
	}
	err := c.audit.VerifyAuditChain(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, domain.ErrAuditChainBroken):
		return fmt.Errorf("%w: %w", ErrAuditBroken, err)
	}
	return fmt.Errorf("%w: verify the audit log: %w", ErrUnreachable, err)
}
