package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store"
)

func TestInsertEntryStoresEveryField(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t, store.WithRetention(48*time.Hour))
	e := entry("payments", -time.Hour)
	e.IdempotencyKey = "order-123-charge"
	e.Priority = domain.PriorityCritical
	e.Metadata = json.RawMessage(`{"trace": "abc"}`)
	e.RecommendedAction = domain.RecommendReplay
	require.NoError(t, s.InsertEntry(t.Context(), e))

	got, err := s.Get(t.Context(), e.ID)
	require.NoError(t, err)
	require.Equal(t, e.ID, got.ID)
	require.Equal(t, "payments", got.Service)
	require.Equal(t, domain.DomainExternalService, got.Domain)
	require.Equal(t, "TIMEOUT", got.FailureType)
	require.Equal(t, "charge", got.Operation)
	require.Equal(t, "order-123-charge", got.IdempotencyKey)
	require.Equal(t, "order", got.EntityType)
	require.Equal(t, "123", got.EntityID)
	require.JSONEq(t, `{"amount": 42}`, string(got.Request))
	require.Equal(t, "504", got.ErrorCode)
	require.Equal(t, "upstream timeout", got.ErrorMessage)
	require.Equal(t, domain.PriorityCritical, got.Priority)
	require.JSONEq(t, `{"trace": "abc"}`, string(got.Metadata))
	require.Equal(t, domain.DLQPending, got.Status)
	require.Zero(t, got.RetryCount)
	require.Equal(t, domain.DefaultMaxRetries, got.MaxRetries)
	require.Equal(t, domain.RecommendReplay, got.RecommendedAction)
	require.Equal(t, t0.Add(-time.Hour), got.CreatedAt)
	require.Equal(t, t0, got.UpdatedAt)
	require.Equal(t, got.CreatedAt, got.NextAttemptAt, "a new entry is due at once")
	require.Equal(t, got.CreatedAt.Add(48*time.Hour), got.ExpiresAt)
	require.True(t, got.LastRetryAt.IsZero())
	require.True(t, got.ResolvedAt.IsZero())
	require.True(t, got.SLABreachedAt.IsZero())
	require.Empty(t, got.ErrorHistory)
	require.Empty(t, got.LeaseOwner)
}

func TestInsertEntryDefaults(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	e := entry("payments", 0)
	e.Domain, e.Priority, e.CreatedAt, e.Request = "", "", time.Time{}, nil
	require.NoError(t, s.InsertEntry(t.Context(), e))
	got, err := s.Get(t.Context(), e.ID)
	require.NoError(t, err)
	require.Equal(t, domain.DomainCustom, got.Domain)
	require.Equal(t, domain.PriorityNormal, got.Priority)
	require.Equal(t, t0, got.CreatedAt)
	require.Equal(t, t0.Add(domain.DefaultRetention), got.ExpiresAt)
	require.Nil(t, got.Request)
}

func TestInsertEntryRefusesInvalidEntries(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	for name, mutate := range map[string]func(*domain.DLQEntry){
		"id not a uuid":    func(e *domain.DLQEntry) { e.ID = "nope" },
		"empty service":    func(e *domain.DLQEntry) { e.Service = "" },
		"unknown domain":   func(e *domain.DLQEntry) { e.Domain = "space" },
		"unknown priority": func(e *domain.DLQEntry) { e.Priority = "urgent" },
		"invalid request":  func(e *domain.DLQEntry) { e.Request = json.RawMessage(`{`) },
		"invalid metadata": func(e *domain.DLQEntry) { e.Metadata = json.RawMessage(`[1,`) },
		"negative retries": func(e *domain.DLQEntry) { e.MaxRetries = -1 },
		"unknown action":   func(e *domain.DLQEntry) { e.RecommendedAction = "pray" },
		// What encoding/json accepts and PostgreSQL does not.
		"NUL in request":             func(e *domain.DLQEntry) { e.Request = json.RawMessage(`{"k":"a\u0000b"}`) },
		"lone surrogate in metadata": func(e *domain.DLQEntry) { e.Metadata = json.RawMessage(`{"k":"\ud800"}`) },
		"bad UTF-8 in request":       func(e *domain.DLQEntry) { e.Request = json.RawMessage("\"\xff\"") },
		"NUL in error message":       func(e *domain.DLQEntry) { e.ErrorMessage = "boom\x00" },
		"bad UTF-8 in operation":     func(e *domain.DLQEntry) { e.Operation = "charge\xc3" },
		// Caught by PostgreSQL itself (SQLSTATE 22003), mapped to the same error.
		"number beyond numeric": func(e *domain.DLQEntry) { e.Request = json.RawMessage(`{"n":1e1000000}`) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := entry("payments", 0)
			mutate(&e)
			err := s.InsertEntry(t.Context(), e)
			require.ErrorIs(t, err, store.ErrInvalidEntry)
		})
	}
}

func TestInsertEntryIsIdempotent(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()

	e := entry("payments", 0)
	e.IdempotencyKey = "order-1"
	require.NoError(t, s.InsertEntry(ctx, e))

	// The same id again (a redelivery), even with other content.
	again := e
	again.IdempotencyKey = "other"
	require.ErrorIs(t, s.InsertEntry(ctx, again), store.ErrDuplicate)

	// Another id with the same live (service, idempotency_key).
	twin := entry("payments", time.Second)
	twin.IdempotencyKey = "order-1"
	require.ErrorIs(t, s.InsertEntry(ctx, twin), store.ErrDuplicate)

	// The same key in another service is another entry.
	other := entry("billing", 0)
	other.IdempotencyKey = "order-1"
	require.NoError(t, s.InsertEntry(ctx, other))

	// Entries without a key never collide.
	for range 3 {
		require.NoError(t, s.InsertEntry(ctx, entry("payments", 0)))
	}
	n, err := s.CountPending(ctx, "payments")
	require.NoError(t, err)
	require.EqualValues(t, 4, n)
}

func TestClosedEntryDoesNotBlockItsIdempotencyKey(t *testing.T) {
	t.Parallel()
	s, _, c := newStore(t)
	ctx := t.Context()
	by := store.Change{Actor: "oncall", Reason: "fixed by hand"}

	for _, close := range []struct {
		name string
		do   func(id string) error
	}{
		{"replayed", func(id string) error {
			l := lease(t, s, "payments", "node-a")
			claimed, err := s.ClaimBatch(ctx, "payments", l.Token, 10, t0)
			require.NoError(t, err)
			require.Equal(t, []string{id}, ids(claimed))
			return s.Complete(ctx, id, l.Token, t0)
		}},
		{"resolved", func(id string) error { _, err := s.Resolve(ctx, id, "done", by); return err }},
		{"rejected", func(id string) error { _, err := s.Discard(ctx, id, by); return err }},
	} {
		e := entry("payments", 0)
		e.IdempotencyKey = "order-7"
		require.NoError(t, s.InsertEntry(ctx, e), close.name)
		require.NoError(t, close.do(e.ID), close.name)
		c.Set(t0.Add(time.Minute))
	}
	// A new live entry with the key is accepted once more.
	e := entry("payments", time.Hour)
	e.IdempotencyKey = "order-7"
	require.NoError(t, s.InsertEntry(ctx, e))
	require.ErrorIs(t, s.InsertEntry(ctx, func() domain.DLQEntry { d := entry("payments", 0); d.IdempotencyKey = "order-7"; return d }()),
		store.ErrDuplicate)
}

func TestInsertEntriesReportsDuplicates(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()

	stored := entry("payments", 0)
	stored.IdempotencyKey = "k-stored"
	require.NoError(t, s.InsertEntry(ctx, stored))

	a := entry("payments", 1)
	b := entry("payments", 2)
	b.IdempotencyKey = "k-b"
	sameKeyAsB := entry("payments", 3)
	sameKeyAsB.IdempotencyKey = "k-b"
	sameKeyAsStored := entry("payments", 4)
	sameKeyAsStored.IdempotencyKey = "k-stored"
	c := entry("billing", 5)
	c.IdempotencyKey = "k-b" // another service

	batch := []domain.DLQEntry{a, b, a, sameKeyAsB, stored, sameKeyAsStored, c}
	res, err := s.InsertEntries(ctx, batch)
	require.NoError(t, err)
	require.Equal(t, []string{a.ID, b.ID, c.ID}, res.Inserted)
	require.Equal(t, []string{a.ID, sameKeyAsB.ID, stored.ID, sameKeyAsStored.ID}, res.Duplicates)

	// The whole batch again: all duplicates.
	res, err = s.InsertEntries(ctx, batch)
	require.NoError(t, err)
	require.Empty(t, res.Inserted)
	require.Len(t, res.Duplicates, len(batch))

	counts, err := s.Counts(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]map[domain.DLQStatus]int64{
		"payments": {domain.DLQPending: 3},
		"billing":  {domain.DLQPending: 1},
	}, counts)
}

func TestInsertEntriesLargeBatch(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	batch := make([]domain.DLQEntry, 4500) // more than one statement
	for i := range batch {
		batch[i] = entry("payments", time.Duration(i)*time.Millisecond)
	}
	batch[4400] = batch[10] // a duplicate across statements
	res, err := s.InsertEntries(t.Context(), batch)
	require.NoError(t, err)
	require.Len(t, res.Inserted, 4499)
	require.Equal(t, []string{batch[10].ID}, res.Duplicates)
}

// TestInsertEntriesRefusedByPostgres: an entry only PostgreSQL refuses fails
// the batch with ErrInvalidEntry (the ingest then stores the others one by
// one), and nothing of the batch is written.
func TestInsertEntriesRefusedByPostgres(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	bad := entry("payments", 0)
	bad.Request = json.RawMessage(`{"n":-1e1000000}`)
	_, err := s.InsertEntries(t.Context(), []domain.DLQEntry{entry("payments", 0), bad, entry("payments", 0)})
	require.ErrorIs(t, err, store.ErrInvalidEntry)
	n, err := s.CountPending(t.Context(), "payments")
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestInsertEntriesFailsWholeOnInvalidEntry(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	bad := entry("payments", 0)
	bad.Service = ""
	_, err := s.InsertEntries(t.Context(), []domain.DLQEntry{entry("payments", 0), bad})
	require.ErrorIs(t, err, store.ErrInvalidEntry)
	require.ErrorContains(t, err, "entry 1")
	n, err := s.CountPending(t.Context(), "payments")
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestGetUnknownEntry(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		_, err := s.Get(t.Context(), id)
		require.ErrorIs(t, err, store.ErrNotFound)
	}
}

func TestPriorityRankColumnMatchesDomain(t *testing.T) {
	t.Parallel()
	s, pool, _ := newStore(t)
	for _, p := range domain.Priorities {
		e := entry("payments", 0)
		e.Priority = p
		require.NoError(t, s.InsertEntry(t.Context(), e))
		var rank int
		require.NoError(t, pool.QueryRow(t.Context(), `SELECT priority_rank FROM dlq_entries WHERE id = $1`, e.ID).Scan(&rank))
		require.Equal(t, p.Rank(), rank, p)
	}
}

func TestListFiltersAndPages(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()

	var all []domain.DLQEntry
	for i := range 25 {
		e := entry("payments", time.Duration(i)*time.Minute)
		if i%5 == 0 {
			e.Service = "billing"
		}
		if i%2 == 0 {
			e.Domain = domain.DomainNotification
			e.FailureType = "SMTP"
		}
		all = append(all, e)
	}
	insert(t, s, all...)
	_, err := s.Discard(ctx, all[1].ID, store.Change{Actor: "oncall", Reason: "noise"})
	require.NoError(t, err)

	collect := func(f store.ListFilter) []string {
		var got []string
		for {
			page, err := s.List(ctx, f)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page.Entries), max(f.Limit, 1))
			got = append(got, ids(page.Entries)...)
			if page.NextCursor == "" {
				return got
			}
			f.Cursor = page.NextCursor
		}
	}
	where := func(keep func(i int, e domain.DLQEntry) bool) []string {
		var out []string
		for i, e := range all {
			if keep(i, e) {
				out = append(out, e.ID)
			}
		}
		return out
	}

	tests := []struct {
		name   string
		filter store.ListFilter
		want   []string
	}{
		{"everything", store.ListFilter{}, ids(all)},
		{"service", store.ListFilter{Service: "billing"},
			where(func(i int, _ domain.DLQEntry) bool { return i%5 == 0 })},
		{"status", store.ListFilter{Statuses: []domain.DLQStatus{domain.DLQRejected}}, []string{all[1].ID}},
		{"statuses", store.ListFilter{Statuses: []domain.DLQStatus{domain.DLQRejected, domain.DLQPending}}, ids(all)},
		{"domain", store.ListFilter{Domain: domain.DomainNotification},
			where(func(i int, _ domain.DLQEntry) bool { return i%2 == 0 })},
		{"failure type and service", store.ListFilter{Service: "payments", FailureType: "TIMEOUT"},
			where(func(i int, _ domain.DLQEntry) bool { return i%2 == 1 && i%5 != 0 })},
		{"created range", store.ListFilter{CreatedAfter: t0.Add(10 * time.Minute), CreatedBefore: t0.Add(15 * time.Minute)},
			where(func(i int, _ domain.DLQEntry) bool { return i >= 10 && i < 15 })},
	}
	for _, tt := range tests {
		for _, limit := range []int{1, 4, 1000} {
			tt.filter.Limit = limit
			require.Equal(t, tt.want, collect(tt.filter), "%s, limit %d", tt.name, limit)
		}
		n, err := s.Count(ctx, tt.filter)
		require.NoError(t, err)
		require.EqualValues(t, len(tt.want), n, tt.name)
	}
}

func TestListRefusesBadArguments(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	for name, f := range map[string]store.ListFilter{
		"negative limit": {Limit: -1},
		"huge limit":     {Limit: store.MaxListLimit + 1},
		"bad cursor":     {Cursor: "!!"},
		"forged cursor":  {Cursor: "MTIz"},
		"bad status":     {Statuses: []domain.DLQStatus{"limbo"}},
		"bad domain":     {Domain: "space"},
	} {
		_, err := s.List(t.Context(), f)
		require.ErrorIs(t, err, store.ErrInvalidArgument, name)
	}
}

func TestCountsAndNextAttempt(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()

	_, ok, err := s.NextAttemptAt(ctx, "payments")
	require.NoError(t, err)
	require.False(t, ok)

	a, b := entry("payments", 5*time.Minute), entry("payments", 2*time.Minute)
	insert(t, s, a, b, entry("billing", 0))
	at, ok, err := s.NextAttemptAt(ctx, "payments")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, t0.Add(2*time.Minute), at)

	_, err = s.Resolve(ctx, b.ID, "fixed", store.Change{Actor: "oncall", Reason: "fixed"})
	require.NoError(t, err)
	at, _, err = s.NextAttemptAt(ctx, "payments")
	require.NoError(t, err)
	require.Equal(t, t0.Add(5*time.Minute), at)

	counts, err := s.Counts(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]map[domain.DLQStatus]int64{
		"payments": {domain.DLQPending: 1, domain.DLQResolved: 1},
		"billing":  {domain.DLQPending: 1},
	}, counts)
	n, err := s.CountPending(ctx, "payments")
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}
