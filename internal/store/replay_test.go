package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store"
)

func TestClaimBatchOrdersByPriorityThenAge(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()

	mk := func(p domain.Priority, age time.Duration) domain.DLQEntry {
		e := entry("payments", age)
		e.Priority = p
		return e
	}
	lowOld := mk(domain.PriorityLow, -3*time.Hour)
	normalNew := mk(domain.PriorityNormal, -time.Minute)
	critNew := mk(domain.PriorityCritical, -time.Minute)
	normalOld := mk(domain.PriorityNormal, -2*time.Hour)
	critOld := mk(domain.PriorityCritical, -time.Hour)
	notDue := mk(domain.PriorityCritical, -4*time.Hour)
	notDue.NextAttemptAt = t0.Add(time.Hour)
	otherService := entry("billing", -5*time.Hour)
	insert(t, s, lowOld, normalNew, critNew, normalOld, critOld, notDue, otherService)

	l := lease(t, s, "payments", "node-a")
	first, err := s.ClaimBatch(ctx, "payments", l.Token, 3, t0)
	require.NoError(t, err)
	require.Equal(t, []string{critOld.ID, critNew.ID, normalOld.ID}, ids(first))
	for _, e := range first {
		require.Equal(t, domain.DLQReplaying, e.Status)
		require.Equal(t, "node-a", e.LeaseOwner)
		require.Equal(t, l.Token, e.FencingToken)
	}
	rest, err := s.ClaimBatch(ctx, "payments", l.Token, 10, t0)
	require.NoError(t, err)
	require.Equal(t, []string{normalNew.ID, lowOld.ID}, ids(rest))

	none, err := s.ClaimBatch(ctx, "payments", l.Token, 10, t0)
	require.NoError(t, err)
	require.Empty(t, none, "the entry not yet due stays")

	l, err = s.AcquireLease(ctx, "payments", "node-a", time.Minute, t0.Add(time.Hour))
	require.NoError(t, err)
	later, err := s.ClaimBatch(ctx, "payments", l.Token, 10, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, []string{notDue.ID}, ids(later))

	_, err = s.ClaimBatch(ctx, "payments", l.Token, 0, t0)
	require.ErrorIs(t, err, store.ErrInvalidArgument)
}

func TestConcurrentClaimersNeverShareAnEntry(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()

	const total = 600
	batch := make([]domain.DLQEntry, total)
	for i := range batch {
		batch[i] = entry("payments", -time.Duration(i)*time.Millisecond)
	}
	insert(t, s, batch...)
	l := lease(t, s, "payments", "node-a")

	// Several claimers share one lease (as the workers of one holder would)
	// and race for the same rows; SKIP LOCKED must hand each row to one.
	const claimers = 6
	var (
		mu    sync.Mutex
		seen  = make(map[string]int)
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	errs := make(chan error, claimers)
	for range claimers {
		wg.Go(func() {
			<-start
			for {
				got, err := s.ClaimBatch(ctx, "payments", l.Token, 7, t0)
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, e := range got {
					seen[e.ID]++
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, seen, total)
	for id, n := range seen {
		require.Equal(t, 1, n, "entry %s claimed %d times", id, n)
	}
}

func TestFencingStaleTokenWritesNothing(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	a, b := entry("payments", 0), entry("payments", time.Second)
	insert(t, s, a, b)

	old := lease(t, s, "payments", "node-a")
	claimed, err := s.ClaimBatch(ctx, "payments", old.Token, 1, t0)
	require.NoError(t, err)
	require.Equal(t, []string{a.ID}, ids(claimed))

	// node-a's lease expires; node-b takes over with a larger token.
	later := t0.Add(2 * time.Minute)
	next, err := s.AcquireLease(ctx, "payments", "node-b", time.Minute, later)
	require.NoError(t, err)
	require.Greater(t, next.Token, old.Token)

	// The stale holder can neither claim nor settle.
	_, err = s.ClaimBatch(ctx, "payments", old.Token, 10, later)
	require.ErrorIs(t, err, store.ErrLeaseLost)
	require.ErrorIs(t, s.Complete(ctx, a.ID, old.Token, later), store.ErrLeaseLost)
	_, err = s.Fail(ctx, a.ID, old.Token, "boom", 0, later)
	require.ErrorIs(t, err, store.ErrLeaseLost)
	_, err = s.Escalate(ctx, a.ID, old.Token, "boom", later)
	require.ErrorIs(t, err, store.ErrLeaseLost)
	_, err = s.CompleteBatch(ctx, []string{a.ID, b.ID}, old.Token, later)
	require.ErrorIs(t, err, store.ErrLeaseLost)

	got, err := s.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, domain.DLQReplaying, got.Status, "the stale writes changed nothing")
	require.Zero(t, got.RetryCount)
	require.Equal(t, old.Token, got.FencingToken)

	// The new holder claims b but not a (still replaying until rescued)…
	claimed, err = s.ClaimBatch(ctx, "payments", next.Token, 10, later)
	require.NoError(t, err)
	require.Equal(t, []string{b.ID}, ids(claimed))
	// …and cannot settle a either: it is not replaying under its token.
	require.ErrorIs(t, s.Complete(ctx, a.ID, next.Token, later), store.ErrLeaseLost)

	// Once rescued, a is the new holder's.
	rescued, err := s.RescueExpired(ctx, later)
	require.NoError(t, err)
	require.Equal(t, []store.EntryRef{{ID: a.ID, Service: "payments"}}, rescued)
	claimed, err = s.ClaimBatch(ctx, "payments", next.Token, 10, later)
	require.NoError(t, err)
	require.Equal(t, []string{a.ID}, ids(claimed))
	require.NoError(t, s.Complete(ctx, a.ID, next.Token, later))
}

func TestFencingExpiredLeaseWithoutSuccessor(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	e := entry("payments", 0)
	insert(t, s, e)
	l := lease(t, s, "payments", "node-a")
	_, err := s.ClaimBatch(ctx, "payments", l.Token, 1, t0)
	require.NoError(t, err)

	expired := l.ExpiresAt
	require.ErrorIs(t, s.Complete(ctx, e.ID, l.Token, expired), store.ErrLeaseLost)
	_, err = s.Fail(ctx, e.ID, l.Token, "boom", 0, expired)
	require.ErrorIs(t, err, store.ErrLeaseLost)
	_, err = s.ClaimBatch(ctx, "payments", l.Token, 1, expired)
	require.ErrorIs(t, err, store.ErrLeaseLost)

	// Unknown entries and never-issued tokens.
	require.ErrorIs(t, s.Complete(ctx, uuid.NewString(), l.Token, t0), store.ErrNotFound)
	_, err = s.ClaimBatch(ctx, "billing", l.Token, 1, t0)
	require.ErrorIs(t, err, store.ErrLeaseLost, "billing has no lease")
}

func TestCompleteMarksReplayed(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	e := entry("payments", 0)
	insert(t, s, e)
	l := lease(t, s, "payments", "node-a")
	_, err := s.ClaimBatch(ctx, "payments", l.Token, 1, t0)
	require.NoError(t, err)

	at := t0.Add(3 * time.Second)
	require.NoError(t, s.Complete(ctx, e.ID, l.Token, at))
	got, err := s.Get(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, domain.DLQReplayed, got.Status)
	require.Equal(t, domain.ResolutionAutoReplay, got.ResolutionType)
	require.Equal(t, at, got.ResolvedAt)
	require.Equal(t, at, got.LastRetryAt)

	// Completing twice is refused: the entry is no longer replaying.
	require.ErrorIs(t, s.Complete(ctx, e.ID, l.Token, at), store.ErrLeaseLost)
}

func TestFailBacksOffThenRequiresReview(t *testing.T) {
	t.Parallel()
	policy := domain.DefaultRetryPolicy()
	s, _, _ := newStore(t, store.WithRetryPolicy(policy))
	ctx := t.Context()
	e := entry("payments", 0)
	e.MaxRetries = 2
	insert(t, s, e)
	l := lease(t, s, "payments", "node-a")

	now := t0
	for attempt := 1; attempt <= e.MaxRetries; attempt++ {
		claimed, err := s.ClaimBatch(ctx, "payments", l.Token, 10, now)
		require.NoError(t, err)
		require.Equal(t, []string{e.ID}, ids(claimed), "attempt %d", attempt)

		now = now.Add(time.Second)
		res, err := s.Fail(ctx, e.ID, l.Token, "HTTP 503", 0, now)
		require.NoError(t, err)
		require.Equal(t, attempt, res.Outcome.RetryCount)

		got, err := s.Get(ctx, e.ID)
		require.NoError(t, err)
		require.Equal(t, res.Entry.Status, got.Status)
		require.Equal(t, attempt, got.RetryCount)
		require.Equal(t, now, got.LastRetryAt)
		require.Equal(t, "HTTP 503", got.LastError)
		require.Len(t, got.ErrorHistory, attempt)
		require.Equal(t, domain.ErrorRecord{At: now, Attempt: attempt, Error: "HTTP 503"}, got.ErrorHistory[attempt-1])

		if attempt < e.MaxRetries {
			require.Equal(t, domain.DLQPending, got.Status)
			require.Equal(t, now.Add(policy.Backoff(attempt, 0)), got.NextAttemptAt)
			require.Equal(t, domain.RecommendReplay, got.RecommendedAction)
			// Not due before its backoff.
			early, err := s.ClaimBatch(ctx, "payments", l.Token, 10, got.NextAttemptAt.Add(-time.Millisecond))
			require.NoError(t, err)
			require.Empty(t, early)
			now = got.NextAttemptAt
			l, err = s.RenewLease(ctx, "payments", l.Token, time.Minute, now)
			require.NoError(t, err)
		} else {
			require.Equal(t, domain.DLQRequiresReview, got.Status)
			require.Equal(t, domain.EscalationRetriesExhausted, res.Outcome.Escalation)
			require.Equal(t, domain.RecommendManualCheck, got.RecommendedAction)
		}
	}
	n, err := s.CountPending(ctx, "payments")
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestEscalateAndNoResponders(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	a, b := entry("payments", -time.Second), entry("payments", 0)
	insert(t, s, a, b)
	l := lease(t, s, "payments", "node-a")
	_, err := s.ClaimBatch(ctx, "payments", l.Token, 2, t0)
	require.NoError(t, err)

	res, err := s.Escalate(ctx, a.ID, l.Token, "declined", t0)
	require.NoError(t, err)
	require.Equal(t, domain.DLQRequiresReview, res.Entry.Status)
	require.Equal(t, domain.EscalationForceClose, res.Outcome.Escalation)
	got, err := s.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, domain.DLQRequiresReview, got.Status)
	require.Equal(t, domain.RecommendEscalate, got.RecommendedAction)
	require.Equal(t, 1, got.RetryCount)

	res, err = s.Settle(ctx, b.ID, l.Token, domain.Attempt{Result: domain.AttemptNoResponders, At: t0})
	require.NoError(t, err)
	require.False(t, res.Outcome.AttemptSpent)
	got, err = s.Get(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, domain.DLQPending, got.Status)
	require.Zero(t, got.RetryCount, "no attempt spent")
	require.Empty(t, got.ErrorHistory)

	// An invalid attempt is refused by the domain and writes nothing.
	claimed, err := s.ClaimBatch(ctx, "payments", l.Token, 1, got.NextAttemptAt)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	_, err = s.Settle(ctx, b.ID, l.Token, domain.Attempt{Result: "maybe", At: got.NextAttemptAt})
	require.ErrorIs(t, err, domain.ErrInvalidAttempt)
	_, err = s.Settle(ctx, b.ID, l.Token, domain.Attempt{Result: domain.AttemptFailed, At: got.NextAttemptAt, Jitter: 2})
	require.ErrorIs(t, err, domain.ErrInvalidAttempt)
}

func TestCompleteBatch(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	batch := []domain.DLQEntry{entry("payments", 0), entry("payments", -1), entry("payments", -2)}
	insert(t, s, batch...)
	l := lease(t, s, "payments", "node-a")
	claimed, err := s.ClaimBatch(ctx, "payments", l.Token, 2, t0)
	require.NoError(t, err)

	// The unclaimed entry is not completed.
	done, err := s.CompleteBatch(ctx, ids(batch), l.Token, t0)
	require.NoError(t, err)
	require.ElementsMatch(t, ids(claimed), done)
	counts, err := s.Counts(ctx)
	require.NoError(t, err)
	require.Equal(t, map[domain.DLQStatus]int64{domain.DLQReplayed: 2, domain.DLQPending: 1}, counts["payments"])
}

func TestClaimEntriesForOperatorReplay(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	review, pending, done := entry("payments", 0), entry("payments", 1), entry("payments", 2)
	insert(t, s, review, pending, done)
	l := lease(t, s, "payments", "node-a")

	claimed, err := s.ClaimBatch(ctx, "payments", l.Token, 1, t0)
	require.NoError(t, err)
	_, err = s.Escalate(ctx, claimed[0].ID, l.Token, "boom", t0)
	require.NoError(t, err)
	_, err = s.Resolve(ctx, done.ID, "by hand", store.Change{Actor: "oncall", Reason: "fixed"})
	require.NoError(t, err)

	got, err := s.ClaimEntries(ctx, "payments", l.Token, []string{review.ID, done.ID, uuid.NewString()}, t0)
	require.NoError(t, err)
	require.Equal(t, []string{review.ID}, ids(got), "only claimable statuses are taken")
	require.Equal(t, domain.DLQReplaying, got[0].Status)

	_, err = s.ClaimEntries(ctx, "payments", l.Token+1, []string{pending.ID}, t0)
	require.ErrorIs(t, err, store.ErrLeaseLost)
}

func TestRescueExpired(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	a, b := entry("payments", 0), entry("billing", 0)
	insert(t, s, a, b)
	la := lease(t, s, "payments", "node-a")
	lb := lease(t, s, "billing", "node-b")
	_, err := s.ClaimBatch(ctx, "payments", la.Token, 10, t0)
	require.NoError(t, err)
	_, err = s.ClaimBatch(ctx, "billing", lb.Token, 10, t0)
	require.NoError(t, err)

	// billing renews, payments does not.
	_, err = s.RenewLease(ctx, "billing", lb.Token, 5*time.Minute, t0.Add(30*time.Second))
	require.NoError(t, err)

	rescued, err := s.RescueExpired(ctx, t0.Add(30*time.Second))
	require.NoError(t, err)
	require.Empty(t, rescued, "both leases are current")

	at := t0.Add(2 * time.Minute)
	rescued, err = s.RescueExpired(ctx, at)
	require.NoError(t, err)
	require.Equal(t, []store.EntryRef{{ID: a.ID, Service: "payments"}}, rescued)
	got, err := s.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, domain.DLQPending, got.Status)
	require.Equal(t, at, got.NextAttemptAt)
	require.Zero(t, got.RetryCount, "a rescue spends no attempt")

	got, err = s.Get(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, domain.DLQReplaying, got.Status)
}
