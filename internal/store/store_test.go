package store_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// t0 is the tests' epoch; every instant is t0 plus an offset.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock for store.WithClock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// newStore returns a store over a fresh database, its pool (for raw SQL) and
// its clock, set to t0.
func newStore(t testing.TB, opts ...store.Option) (*store.Store, *pgxpool.Pool, *clock) {
	t.Helper()
	pool := testenv.Postgres(t)
	c := &clock{now: t0}
	return store.New(pool, append([]store.Option{store.WithClock(c.Now), store.WithAuditKey(testenv.AuditKey)}, opts...)...), pool, c
}

// entry returns a valid dead letter for service, created at t0 + age.
func entry(service string, age time.Duration) domain.DLQEntry {
	return domain.DLQEntry{
		ID:           uuid.NewString(),
		Service:      service,
		Domain:       domain.DomainExternalService,
		FailureType:  "TIMEOUT",
		Operation:    "charge",
		EntityType:   "order",
		EntityID:     "123",
		Request:      json.RawMessage(`{"amount": 42}`),
		ErrorCode:    "504",
		ErrorMessage: "upstream timeout",
		Priority:     domain.PriorityNormal,
		MaxRetries:   domain.DefaultMaxRetries,
		CreatedAt:    t0.Add(age),
	}
}

// insert stores the entries and fails the test unless all are new.
func insert(t testing.TB, s *store.Store, entries ...domain.DLQEntry) {
	t.Helper()
	res, err := s.InsertEntries(t.Context(), entries)
	require.NoError(t, err)
	require.Len(t, res.Inserted, len(entries), "duplicates: %v", res.Duplicates)
}

// lease acquires the service's lease for holder at t0 for a minute.
func lease(t testing.TB, s *store.Store, service, holder string) domain.Lease {
	t.Helper()
	l, err := s.AcquireLease(t.Context(), service, holder, time.Minute, t0)
	require.NoError(t, err)
	return l
}

func ids(entries []domain.DLQEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.ID
	}
	return out
}

// verifyErr drops the report of a verification.
func verifyErr(_ store.AuditReport, err error) error { return err }
