package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// fillLive adds n pending entries of svc with SQL (the insert benchmark
// measures the store's own path), created before t0.
func fillLive(b *testing.B, pool *pgxpool.Pool, svc string, n int) {
	b.Helper()
	_, err := pool.Exec(context.Background(), `
		INSERT INTO dlq_entries (id, service, domain, failure_type, operation, request, status,
		                         next_attempt_at, created_at, updated_at, expires_at)
		SELECT gen_random_uuid(), $1, 'custom', 'TIMEOUT', 'charge', '{"order_id":"ord-8c1d2f","amount":4200}',
		       'pending', $2::timestamptz, $2::timestamptz - g * interval '1 microsecond', $2::timestamptz, $2::timestamptz + interval '30 days'
		FROM generate_series(1, $3::int) g`, svc, t0, n)
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkLiveCheck measures the pieces of the ingest's per-service bound
// on live entries (replay.IngestConfig.MaxPendingPerService), beside the
// tables it reads: 1,000,000 live entries of one service, 100,000 of
// another, 1,000 of a third, 100 more services of 10, and as many replayed
// entries as live ones for the largest.
//
//   - LiveCounts/services=N: what every batch pays, one lookup of N
//     services' counters.
//   - RecountLive/live=N/{fresh,vacuumed}/{live-index,listing-index}: one
//     exact count of a service with N live entries, right after they were
//     written (the visibility map not set yet: heap fetches) and after a
//     VACUUM, through the partial index dlq_entries_live_service or, with it
//     dropped, through the listing index (service, status, created_at, id).
//     This is what a count query on every batch would cost, and what a
//     recount costs when the service nears its bound.
func BenchmarkLiveCheck(b *testing.B) {
	s, pool, _ := newStore(b)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `ALTER TABLE dlq_entries SET (autovacuum_enabled = false)`); err != nil {
		b.Fatal(err)
	}
	sizes := map[string]int{"live-1000000": 1_000_000, "live-100000": 100_000, "live-1000": 1000}
	for svc, n := range sizes {
		fillLive(b, pool, svc, n)
	}
	fillLive(b, pool, "replayed", 1_000_000)
	if _, err := pool.Exec(ctx, `UPDATE dlq_entries SET status = 'replayed' WHERE service = 'replayed'`); err != nil {
		b.Fatal(err)
	}
	var many []string
	for i := range 100 {
		svc := fmt.Sprint("svc-", i)
		many = append(many, svc)
		fillLive(b, pool, svc, 10)
	}
	if _, err := pool.Exec(ctx, `ANALYZE dlq_entries`); err != nil {
		b.Fatal(err)
	}
	if _, err := s.RecountLive(ctx, append([]string{"live-1000000", "live-100000", "live-1000"}, many...), t0); err != nil {
		b.Fatal(err)
	}

	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("LiveCounts/services=%d", n), func(b *testing.B) {
			for b.Loop() {
				got, err := s.LiveCounts(ctx, many[:n])
				if err != nil || len(got) != n {
					b.Fatal(len(got), err)
				}
			}
		})
	}
	recount := func(state, index string) {
		for _, n := range []int{1000, 100_000, 1_000_000} {
			svc := fmt.Sprint("live-", n)
			b.Run(fmt.Sprintf("RecountLive/live=%d/%s/%s", n, state, index), func(b *testing.B) {
				for b.Loop() {
					got, err := s.RecountLive(ctx, []string{svc}, t0)
					if err != nil || got[svc] != int64(n) {
						b.Fatal(got, err)
					}
				}
			})
		}
	}
	recount("fresh", "live-index")
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) dlq_entries`); err != nil {
		b.Fatal(err)
	}
	recount("vacuumed", "live-index")
	if _, err := pool.Exec(ctx, `DROP INDEX dlq_entries_live_service`); err != nil {
		b.Fatal(err)
	}
	recount("vacuumed", "listing-index")
}
