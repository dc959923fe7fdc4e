package replay_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
)

// BenchmarkIngestBound measures what the per-service bound on live entries
// costs the ingest, end to end: b.N dead letters over 10 services wait in
// BALDUR_DLQ, and the clock runs from the start of Ingest until the last one
// is settled.
//
//   - bound=off: MaxPendingPerService is UnboundedPending, no count is read
//     (the anchor).
//   - bound=on: the default bound, far away: one lookup of the live counts
//     per batch, and one recount per service when it is first met.
//   - at-bound: every service is at its bound (1, reached by the first dead
//     letter of each): the rest are refused, each with a backlog_full event.
func BenchmarkIngestBound(b *testing.B) {
	const services = 10
	for _, mode := range []string{"bound=off", "bound=on", "at-bound"} {
		b.Run(mode, func(b *testing.B) {
			env := newIngestEnv(b)
			for i := range b.N {
				id := uuid.New()
				dl := ingestLetter("key-" + id.String())
				dl.Request = ingestBenchRequest
				m, err := events.NewMsg(events.MustDLQSubject(fmt.Sprint("svc-", i%services)),
					events.NewEnvelope(events.TypeDLQ, id, "bench", time.Now()), dl)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := env.nats.JS.PublishMsgAsync(m); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-env.nats.JS.PublishAsyncComplete():
			case <-time.After(5 * time.Minute):
				b.Fatal("publishing timed out")
			}
			cfg := replay.IngestConfig{}
			switch mode {
			case "bound=off":
				cfg.MaxPendingPerService = replay.UnboundedPending
			case "at-bound":
				cfg.MaxPendingPerService = 1
			}
			in, err := replay.NewIngest(cfg, replay.IngestDeps{Store: env.counted, JS: env.nats.JS, NodeID: "bench",
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			if err := in.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			settled := func() uint64 { st := in.Stats(); return st.Inserted + st.Duplicates + st.BacklogFull }
			deadline := time.After(5 * time.Minute)
			tick := time.NewTicker(time.Millisecond)
			for settled() < uint64(b.N) {
				select {
				case <-tick.C:
				case <-deadline:
					b.Fatalf("%d of %d dead letters settled: %+v", settled(), b.N, in.Stats())
				}
			}
			tick.Stop()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			if st := in.Stats(); st.BacklogFull > 0 {
				b.ReportMetric(float64(st.BacklogFull)/float64(b.N), "refused/op")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := in.Stop(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}
