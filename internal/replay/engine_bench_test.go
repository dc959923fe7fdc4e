package replay_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// engineBenchChunk is the backlog one benchmark iteration drains.
const engineBenchChunk = 1000

var engineBenchRequest = json.RawMessage(`{"order_id":"ord-8c1d2f","amount":4200,"currency":"EUR","customer":{"id":"cus-31"}}`)

func engineBenchEntries(svc string, n int) []domain.DLQEntry {
	out := make([]domain.DLQEntry, n)
	now := time.Now().Add(-time.Minute)
	for i := range out {
		id := uuid.NewString()
		out[i] = domain.DLQEntry{
			ID: id, Service: svc, Domain: domain.DomainExternalService, FailureType: "TIMEOUT",
			Operation: "charge", IdempotencyKey: "key-" + id, Request: engineBenchRequest,
			Priority: domain.PriorityNormal, MaxRetries: domain.DefaultMaxRetries, CreatedAt: now,
		}
	}
	return out
}

// BenchmarkReplayEndToEnd drains backlogs of dead letters through the engine:
// claim (batches of 100), one NATS request per entry to a handler that answers
// ok, completion and events, rate limit off (DESIGN §9: at least half the rate
// of BenchmarkRawClaimResolve, its anchor in the same run).
func BenchmarkReplayEndToEnd(b *testing.B) {
	nenv := testenv.NATS(b)
	st := store.New(testenv.Postgres(b), store.WithAuditKey(testenv.AuditKey))
	_, err := topology.Ensure(b.Context(), nenv.JS, topology.Config{Storage: jetstream.MemoryStorage})
	require.NoError(b, err)
	svcConn := nenv.Connect(b)
	_, err = svcConn.QueueSubscribe(events.MustReplaySubject("payments"), "baldur-replay", func(m *nats.Msg) {
		_ = m.Respond([]byte(`{"ok":true}`))
	})
	require.NoError(b, err)
	require.NoError(b, svcConn.Flush())
	view := newEngineView()
	view.set("payments", domain.StateClosed, 1)
	e, err := replay.NewEngine(st, nenv.Conn, nenv.JS, view, replay.EngineConfig{
		Node: "bench", Batch: domain.BatchSizing{Start: 100, Min: 10, Max: 100, ShrinkFactor: 0.8,
			ShrinkAtFailureRate: 0.2, GrowStep: 5, GrowAfter: 3},
	})
	require.NoError(b, err)
	ctx := b.Context()

	rows := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		_, err := st.InsertEntries(ctx, engineBenchEntries("payments", engineBenchChunk))
		require.NoError(b, err)
		b.StartTimer()
		res, err := e.ReplayOnClose(ctx, "payments", replay.ReplayOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if res.Success != engineBenchChunk {
			b.Fatalf("replayed %d of %d: %+v", res.Success, engineBenchChunk, res)
		}
		rows += res.Success
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkRawClaimResolve is the anchor: the same backlogs claimed 100 at a
// time and marked replayed in SQL only (the path of
// store.BenchmarkClaimAndComplete), under one lease per backlog.
func BenchmarkRawClaimResolve(b *testing.B) {
	st := store.New(testenv.Postgres(b), store.WithAuditKey(testenv.AuditKey))
	ctx := b.Context()
	rows := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		_, err := st.InsertEntries(ctx, engineBenchEntries("payments", engineBenchChunk))
		require.NoError(b, err)
		b.StartTimer()
		now := time.Now()
		l, err := st.AcquireLease(ctx, "payments", "bench", time.Hour, now)
		if err != nil {
			b.Fatal(err)
		}
		for {
			claimed, err := st.ClaimBatch(ctx, "payments", l.Token, 100, now)
			if err != nil {
				b.Fatal(err)
			}
			if len(claimed) == 0 {
				break
			}
			ids := make([]string, len(claimed))
			for j, c := range claimed {
				ids[j] = c.ID
			}
			done, err := st.CompleteBatch(ctx, ids, l.Token, now)
			if err != nil || len(done) != len(ids) {
				b.Fatal(fmt.Errorf("completed %d of %d: %v", len(done), len(ids), err))
			}
			rows += len(done)
		}
		if err := st.ReleaseLease(ctx, "payments", l.Token, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
