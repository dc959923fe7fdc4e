package store_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

// benchRequest is a typical dead letter's request body.
var benchRequest = json.RawMessage(`{"order_id": "ord-8c1d2f", "amount": 4200, "currency": "EUR",
	"customer": {"id": "cus-31", "email": "someone@example.com"}, "items": [{"sku": "A-1", "qty": 2}]}`)

func benchBatch(service string, n int, key bool) []domain.DLQEntry {
	out := make([]domain.DLQEntry, n)
	for i := range out {
		e := entry(service, -time.Duration(n-i)*time.Microsecond)
		e.ID = uuid.NewString()
		e.Request = benchRequest
		if key {
			e.IdempotencyKey = "key-" + e.ID
		}
		out[i] = e
	}
	return out
}

// BenchmarkInsertEntries measures batched dead-letter ingest (DESIGN §9:
// at least 20k entries/s).
func BenchmarkInsertEntries(b *testing.B) {
	for _, size := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s, _, _ := newStore(b)
			ctx := b.Context()
			total := 0
			for b.Loop() {
				res, err := s.InsertEntries(ctx, benchBatch("payments", size, true))
				if err != nil {
					b.Fatal(err)
				}
				total += len(res.Inserted)
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "entries/s")
		})
	}
	b.Run("single", func(b *testing.B) {
		s, _, _ := newStore(b)
		ctx := b.Context()
		total := 0
		for b.Loop() {
			if err := s.InsertEntry(ctx, benchBatch("payments", 1, true)[0]); err != nil {
				b.Fatal(err)
			}
			total++
		}
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "entries/s")
	})
}

// BenchmarkClaimAndComplete is the replay anchor of DESIGN §9: claim 100
// entries under a lease and mark them replayed, in SQL only.
func BenchmarkClaimAndComplete(b *testing.B) {
	const claim, refill = 100, 10000
	s, _, _ := newStore(b)
	ctx := b.Context()
	l, err := s.AcquireLease(ctx, "payments", "bench", 24*time.Hour, t0)
	require.NoError(b, err)

	pending := 0
	rows := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if pending < claim {
			b.StopTimer()
			res, err := s.InsertEntries(ctx, benchBatch("payments", refill, false))
			require.NoError(b, err)
			pending += len(res.Inserted)
			b.StartTimer()
		}
		claimed, err := s.ClaimBatch(ctx, "payments", l.Token, claim, t0)
		if err != nil {
			b.Fatal(err)
		}
		done, err := s.CompleteBatch(ctx, ids(claimed), l.Token, t0)
		if err != nil {
			b.Fatal(err)
		}
		if len(done) != len(claimed) || len(done) != claim {
			b.Fatalf("claimed %d, completed %d, want %d", len(claimed), len(done), claim)
		}
		pending -= len(done)
		rows += len(done)
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkClaimAndCompleteOneByOne settles each claimed entry with its own
// Complete, as a replay-worker that reports every delivery does.
func BenchmarkClaimAndCompleteOneByOne(b *testing.B) {
	const claim, refill = 100, 5000
	s, _, _ := newStore(b)
	ctx := b.Context()
	l, err := s.AcquireLease(ctx, "payments", "bench", 24*time.Hour, t0)
	require.NoError(b, err)

	pending, rows := 0, 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if pending < claim {
			b.StopTimer()
			res, err := s.InsertEntries(ctx, benchBatch("payments", refill, false))
			require.NoError(b, err)
			pending += len(res.Inserted)
			b.StartTimer()
		}
		claimed, err := s.ClaimBatch(ctx, "payments", l.Token, claim, t0)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range claimed {
			if err := s.Complete(ctx, e.ID, l.Token, t0); err != nil {
				b.Fatal(err)
			}
		}
		pending -= len(claimed)
		rows += len(claimed)
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
