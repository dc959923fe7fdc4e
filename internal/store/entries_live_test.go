package store_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store"
)

// TestLiveCountsFollowInserts: every insert adds what it stored to its
// services' live counts, in one statement or, beyond one chunk, in one
// transaction; duplicates add nothing.
func TestLiveCountsFollowInserts(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()

	got, err := s.LiveCounts(ctx, []string{"payments"})
	require.NoError(t, err)
	require.Empty(t, got, "no counter before the first insert")

	batch := []domain.DLQEntry{entry("payments", 0), entry("payments", time.Second), entry("ledger", 0)}
	batch[0].IdempotencyKey = "k-1"
	dupKey := entry("payments", 2*time.Second)
	dupKey.IdempotencyKey = "k-1"
	batch = append(batch, dupKey, batch[2]) // a key twice, an id twice
	res, err := s.InsertEntries(ctx, batch)
	require.NoError(t, err)
	require.Len(t, res.Inserted, 3)
	require.Len(t, res.Duplicates, 2)

	got, err = s.LiveCounts(ctx, []string{"payments", "ledger", "orders"})
	require.NoError(t, err)
	require.Equal(t, map[string]store.LiveCount{"payments": {Live: 2}, "ledger": {Live: 1}}, got)

	// More than one chunk (2,000 rows): one transaction, the counter rows
	// locked first.
	var big []domain.DLQEntry
	for i := range 2500 {
		big = append(big, entry(fmt.Sprint("svc-", i%3), time.Duration(i)*time.Microsecond))
	}
	big = append(big, batch[0]) // stored already
	res, err = s.InsertEntries(ctx, big)
	require.NoError(t, err)
	require.Len(t, res.Inserted, 2500)
	got, err = s.LiveCounts(ctx, []string{"svc-0", "svc-1", "svc-2", "payments"})
	require.NoError(t, err)
	require.Equal(t, int64(834), got["svc-0"].Live)
	require.Equal(t, int64(833), got["svc-1"].Live)
	require.Equal(t, int64(833), got["svc-2"].Live)
	require.Equal(t, int64(2), got["payments"].Live, "a duplicate adds nothing")
}

// TestRecountLive: entries that left the live statuses are still in the
// estimate until a recount, which counts pending, replaying,
// requires_review and reviewing entries and nothing else.
func TestRecountLive(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	var batch []domain.DLQEntry
	for i := range 10 {
		batch = append(batch, entry("payments", time.Duration(i)*time.Second))
	}
	_, err := s.InsertEntries(ctx, batch)
	require.NoError(t, err)

	// Replay 4: two replayed (terminal), two left replaying (live).
	l, err := s.AcquireLease(ctx, "payments", "test", time.Hour, t0)
	require.NoError(t, err)
	claimed, err := s.ClaimBatch(ctx, "payments", l.Token, 4, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Len(t, claimed, 4)
	done, err := s.CompleteBatch(ctx, ids(claimed[:2]), l.Token, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Len(t, done, 2)

	got, err := s.LiveCounts(ctx, []string{"payments"})
	require.NoError(t, err)
	require.Equal(t, store.LiveCount{Live: 10}, got["payments"], "ended entries are not subtracted")

	at := t0.Add(time.Hour)
	n, err := s.RecountLive(ctx, []string{"payments", "unknown", "payments"}, at)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"payments": 8, "unknown": 0}, n)
	got, err = s.LiveCounts(ctx, []string{"payments", "unknown"})
	require.NoError(t, err)
	require.Equal(t, int64(8), got["payments"].Live)
	require.True(t, got["payments"].RecountedAt.Equal(at), "recounted at %s", got["payments"].RecountedAt)
	require.Equal(t, int64(0), got["unknown"].Live)
	require.True(t, got["unknown"].RecountedAt.Equal(at))

	_, err = s.InsertEntries(ctx, []domain.DLQEntry{entry("payments", time.Hour)})
	require.NoError(t, err)
	got, err = s.LiveCounts(ctx, []string{"payments"})
	require.NoError(t, err)
	require.Equal(t, int64(9), got["payments"].Live, "inserts after a recount are added to it")
}

// TestRecountLiveLosesNoConcurrentInsert: recounts running while writers
// insert for the same services never lose an insert: once the writers are
// done, the estimate is exact (nothing ended).
func TestRecountLiveLosesNoConcurrentInsert(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	services := []string{"a", "b", "c"}
	const writers, batches, size = 4, 20, 25

	var wg sync.WaitGroup
	stop := make(chan struct{})
	recounts := 0
	recounted := make(chan struct{})
	go func() {
		defer close(recounted)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, err := s.RecountLive(ctx, services, t0)
			if err != nil {
				t.Error(err)
				return
			}
			recounts++
		}
	}()
	for w := range writers {
		wg.Go(func() {
			for i := range batches {
				var batch []domain.DLQEntry
				for j := range size {
					batch = append(batch, entry(services[(w+i+j)%len(services)], time.Duration(j)*time.Millisecond))
				}
				if _, err := s.InsertEntries(ctx, batch); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-recounted
	require.Positive(t, recounts)

	got, err := s.LiveCounts(ctx, services)
	require.NoError(t, err)
	exact, err := s.RecountLive(ctx, services, t0)
	require.NoError(t, err)
	var total int64
	for _, svc := range services {
		require.Equal(t, exact[svc], got[svc].Live, "service %s after %d recounts", svc, recounts)
		total += exact[svc]
	}
	require.Equal(t, int64(writers*batches*size), total)
}

// TestStoredEntries names the entries an insert would skip: the same id, or
// a live entry of the same service with the same idempotency key.
func TestStoredEntries(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	stored := entry("payments", 0)
	keyed := entry("payments", time.Second)
	keyed.IdempotencyKey = "order-1"
	_, err := s.InsertEntries(ctx, []domain.DLQEntry{stored, keyed})
	require.NoError(t, err)

	sameKey := entry("payments", 2*time.Second)
	sameKey.IdempotencyKey = "order-1"
	otherService := entry("ledger", 0)
	otherService.IdempotencyKey = "order-1"
	noKey := entry("payments", 3*time.Second)
	bad := entry("payments", 0)
	bad.ID = "not-a-uuid"
	got, err := s.StoredEntries(ctx, []domain.DLQEntry{stored, sameKey, otherService, noKey, bad})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{stored.ID, sameKey.ID}, got)

	// Once the keyed entry is replayed, its key no longer blocks a twin.
	l, err := s.AcquireLease(ctx, "payments", "test", time.Hour, t0)
	require.NoError(t, err)
	claimed, err := s.ClaimBatch(ctx, "payments", l.Token, 10, t0.Add(time.Minute))
	require.NoError(t, err)
	_, err = s.CompleteBatch(ctx, ids(claimed), l.Token, t0.Add(time.Minute))
	require.NoError(t, err)
	got, err = s.StoredEntries(ctx, []domain.DLQEntry{stored, sameKey})
	require.NoError(t, err)
	require.Equal(t, []string{stored.ID}, got, "a replayed twin does not make a new key a duplicate")

	got, err = s.StoredEntries(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, got)
}
