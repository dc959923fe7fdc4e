package replay_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
)

// ingestBenchRequest is a typical dead letter's request body (the same shape
// as the store's insert benchmark).
var ingestBenchRequest = json.RawMessage(`{"order_id":"ord-8c1d2f","amount":4200,"currency":"EUR",` +
	`"customer":{"id":"cus-31","email":"someone@example.com"},"items":[{"sku":"A-1","qty":2}]}`)

// BenchmarkIngest measures dead letters ingested into PostgreSQL end to end
// (DESIGN §9: at least 20k entries/s batched).
//
//   - backlog: b.N dead letters wait in BALDUR_DLQ; the clock runs from the
//     start of Ingest until the last one is committed and acked.
//   - live: a publisher publishes b.N dead letters while Ingest runs; the
//     clock covers publishing and ingesting.
func BenchmarkIngest(b *testing.B) {
	for _, mode := range []string{"backlog", "live"} {
		b.Run(mode, func(b *testing.B) {
			env := newIngestEnv(b)
			msgs := make([]*nats.Msg, b.N)
			for i := range msgs {
				id := uuid.New()
				dl := ingestLetter("key-" + id.String())
				dl.Request = ingestBenchRequest
				m, err := events.NewMsg(events.MustDLQSubject("payments"), events.NewEnvelope(events.TypeDLQ, id, "bench", time.Now()), dl)
				if err != nil {
					b.Fatal(err)
				}
				msgs[i] = m
			}
			publish := func() {
				for _, m := range msgs {
					if _, err := env.nats.JS.PublishMsgAsync(m); err != nil {
						b.Fatal(err)
					}
				}
				select {
				case <-env.nats.JS.PublishAsyncComplete():
				case <-time.After(5 * time.Minute):
					b.Fatal("publishing timed out")
				}
			}
			if mode == "backlog" {
				publish()
			}
			in, err := replay.NewIngest(replay.IngestConfig{}, replay.IngestDeps{Store: env.counted, JS: env.nats.JS, NodeID: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			if err := in.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			if mode == "live" {
				publish()
			}
			env.counted.wait(b, b.N, 5*time.Minute)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := in.Stop(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}
