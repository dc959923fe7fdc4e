package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store/dbsqlc"
)

// Store is the PostgreSQL repository. It is safe for concurrent use.
type Store struct {
	pool      *pgxpool.Pool
	q         *dbsqlc.Queries
	now       func() time.Time
	retention time.Duration
	policy    domain.RetryPolicy
	auditKey  domain.AuditKey
	anchor    AuditAnchor
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock used where a method takes no explicit time
// (InsertEntry defaults, operator changes, audit appends). Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// WithRetention sets how long after its creation an inserted entry expires
// when the entry names no expires_at. Default domain.DefaultRetention.
func WithRetention(d time.Duration) Option {
	return func(s *Store) { s.retention = d }
}

// WithRetryPolicy sets the policy Fail and Escalate settle attempts with.
// Default domain.DefaultRetryPolicy().
func WithRetryPolicy(p domain.RetryPolicy) Option {
	return func(s *Store) { s.policy = p }
}

// WithAuditKey sets the key the audit log is chained with (HMAC-SHA256).
// Without it, appending an audit record (and so every operator change of a
// dead letter) and verifying the log fail with ErrNoAuditKey.
func WithAuditKey(k domain.AuditKey) Option {
	return func(s *Store) { s.auditKey = k }
}

// WithAuditAnchor sets where the head of the audit log is anchored outside
// PostgreSQL each time a record is committed.
func WithAuditAnchor(a AuditAnchor) Option {
	return func(s *Store) { s.anchor = a }
}

// New returns a Store over pool. The schema must have been migrated
// (db.Migrate).
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{
		pool:      pool,
		q:         dbsqlc.New(pool),
		now:       time.Now,
		retention: domain.DefaultRetention,
		policy:    domain.DefaultRetryPolicy(),
	}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// inTx runs fn in a transaction, committed when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(q *dbsqlc.Queries) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return fn(s.q.WithTx(tx))
	})
}

// entryFromRow converts a dbsqlc row to the domain type.
func entryFromRow(r dbsqlc.DlqEntry) (domain.DLQEntry, error) {
	e := domain.DLQEntry{
		ID:                r.ID,
		Service:           r.Service,
		Domain:            domain.FailureDomain(r.Domain),
		FailureType:       r.FailureType,
		Operation:         r.Operation,
		IdempotencyKey:    r.IdempotencyKey,
		EntityType:        r.EntityType,
		EntityID:          r.EntityID,
		Request:           rawJSON(r.Request),
		ErrorCode:         r.ErrorCode,
		ErrorMessage:      r.ErrorMessage,
		Priority:          domain.Priority(r.Priority),
		Metadata:          rawJSON(r.Metadata),
		Status:            domain.DLQStatus(r.Status),
		RetryCount:        int(r.RetryCount),
		MaxRetries:        int(r.MaxRetries),
		LastRetryAt:       fromPtr(r.LastRetryAt),
		NextAttemptAt:     r.NextAttemptAt.UTC(),
		LastError:         r.LastError,
		ResolutionType:    domain.ResolutionType(r.ResolutionType),
		ResolutionNote:    r.ResolutionNote,
		RecommendedAction: domain.RecommendedAction(r.RecommendedAction),
		ResolvedAt:        fromPtr(r.ResolvedAt),
		LeaseOwner:        r.LeaseOwner,
		FencingToken:      r.FencingToken,
		SLABreachedAt:     fromPtr(r.SlaBreachedAt),
		CreatedAt:         r.CreatedAt.UTC(),
		UpdatedAt:         r.UpdatedAt.UTC(),
		ExpiresAt:         r.ExpiresAt.UTC(),
	}
	if len(r.ErrorHistory) > 0 {
		if err := json.Unmarshal(r.ErrorHistory, &e.ErrorHistory); err != nil {
			return domain.DLQEntry{}, fmt.Errorf("entry %s: decode error_history: %w", r.ID, err)
		}
		if len(e.ErrorHistory) == 0 {
			e.ErrorHistory = nil
		}
	}
	return e, nil
}

func entriesFromRows(rows []dbsqlc.DlqEntry) ([]domain.DLQEntry, error) {
	out := make([]domain.DLQEntry, 0, len(rows))
	for _, r := range rows {
		e, err := entryFromRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func leaseFromRow(r dbsqlc.ReplayLease) domain.Lease {
	return domain.Lease{
		Service:    r.Service,
		Holder:     r.Holder,
		Token:      r.FencingToken,
		AcquiredAt: r.AcquiredAt.UTC(),
		RenewedAt:  r.RenewedAt.UTC(),
		ExpiresAt:  r.ExpiresAt.UTC(),
	}
}

func rawJSON(b []byte) json.RawMessage {
	if b == nil {
		return nil
	}
	return json.RawMessage(b)
}

// toPtr maps the zero time to NULL.
func toPtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// fromPtr maps NULL to the zero time.
func fromPtr(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func statusStrings(ss []domain.DLQStatus) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// isDataError reports whether err is PostgreSQL refusing a value rather than
// failing: SQLSTATE class 22 (data exception: a NUL, bad UTF-8, a number out
// of range) or 54 (program limit exceeded: nesting too deep, a row too big).
// The same statement fails the same way every time, so it is the input's
// fault, never the database being down.
func isDataError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "54")
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
