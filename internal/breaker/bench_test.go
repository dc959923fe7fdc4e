package breaker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// Sizes of the folding benchmarks (DESIGN §9: one breaker-worker folds at
// least 0.8 × the raw async publish rate into the same server).
const (
	benchMessages = 100_000
	benchServices = 100
	benchNodes    = 10
	benchBodySize = 128
)

// BenchmarkRawAsyncPublish is the anchor of BenchmarkFoldRate: async publish
// of 128-byte messages into a file-storage stream on an embedded server, every
// ack awaited. One op is benchMessages messages.
func BenchmarkRawAsyncPublish(b *testing.B) {
	env := testenv.NATS(b)
	ctx := context.Background()
	stream, err := env.JS.CreateStream(ctx, jetstream.StreamConfig{
		Name: "RAW", Subjects: []string{"raw.>"}, Storage: jetstream.FileStorage,
	})
	require.NoError(b, err)
	js, err := jetstream.New(env.Conn, jetstream.WithPublishAsyncMaxPending(4096))
	require.NoError(b, err)
	body := make([]byte, benchBodySize)
	subjects := make([]string, benchServices)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("raw.svc-%03d", i)
	}
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		require.NoError(b, stream.Purge(ctx))
		b.StartTimer()
		start := time.Now()
		for i := range benchMessages {
			if _, err := js.PublishAsync(subjects[i%benchServices], body); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("acks not received within a minute")
		}
		elapsed += time.Since(start)
	}
	b.ReportMetric(float64(benchMessages*b.N)/elapsed.Seconds(), "msgs/s")
}

// BenchmarkFoldRate measures one breaker-worker's folding rate: benchMessages
// outcome reports of one call each over benchServices services are stored in
// BALDUR_INPUT first (not timed), then one worker is started and the time
// from Start until it has folded all of them is measured. Each op starts a
// new worker on the same server; the previous one released its partitions.
// partitions=16 is the default topology; with fewer partitions the server
// scans less (every partition consumer walks the interleaved stream).
func BenchmarkFoldRate(b *testing.B) {
	for _, parts := range []int{topology.DefaultPartitions, 4} {
		b.Run(fmt.Sprintf("partitions=%d", parts), func(b *testing.B) { benchFoldRate(b, parts) })
	}
}

func benchFoldRate(b *testing.B, partitions int) {
	env := testenv.NATS(b)
	ctx := context.Background()
	top, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: partitions})
	require.NoError(b, err)
	view, err := fleetstate.Watch(ctx, env.JS)
	require.NoError(b, err)
	b.Cleanup(view.Stop)
	pub, err := jetstream.New(env.Connect(b), jetstream.WithPublishAsyncMaxPending(4096))
	require.NoError(b, err)
	subjects := make([]string, benchServices)
	for i := range subjects {
		subjects[i] = events.MustOutcomeSubject(fmt.Sprintf("svc-%03d", i))
	}
	nodes := make([]string, benchNodes)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("node-%02d", i)
	}
	body := events.OutcomeReport{Successes: 1}
	var (
		elapsed, startup time.Duration
		folded           int64
		round            int
	)
	for b.Loop() {
		b.StopTimer()
		for i := range benchMessages {
			msg, err := events.NewMsg(subjects[i%benchServices],
				events.NewEnvelopeRandomID(events.TypeOutcome, nodes[i%benchNodes], time.Now()), body)
			require.NoError(b, err)
			_, err = pub.PublishMsgAsync(msg)
			require.NoError(b, err)
		}
		<-pub.PublishAsyncComplete()
		w, err := breaker.New(env.JS, breaker.Config{
			Topology: top, Node: fmt.Sprintf("bench-%d", round), Configs: view, Governance: view,
		})
		require.NoError(b, err)
		round++
		b.StartTimer()

		start := time.Now()
		require.NoError(b, w.Start(ctx))
		waitReports(b, w, 1)
		startup += time.Since(start)
		waitReports(b, w, benchMessages)
		elapsed += time.Since(start)

		b.StopTimer()
		folded += w.Stats().Reports
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		require.NoError(b, w.Stop(stopCtx))
		cancel()
		b.StartTimer()
	}
	b.ReportMetric(float64(folded)/elapsed.Seconds(), "msgs/s")
	// The same without the start (leases, consumer resets, first fetch).
	b.ReportMetric(float64(folded)/(elapsed-startup).Seconds(), "msgs/s-folding")
	b.ReportMetric(float64(startup.Milliseconds())/float64(b.N), "ms-to-first-fold")
	b.ReportMetric(0, "ns/op")

	// Every report is in the breakers: one call each.
	var calls int64
	for i := range benchServices {
		br, _, err := breaker.NewStateStore(top.Breakers, env.JS, "bench", nil).Get(ctx, fmt.Sprintf("svc-%03d", i))
		require.NoError(b, err)
		calls += br.Window.Calls()
	}
	require.Equal(b, int64(benchMessages*b.N), calls)
}

// waitReports waits until w has folded n reports, checking every
// millisecond (a small part of the measured time).
func waitReports(b *testing.B, w *breaker.Worker, n int64) {
	b.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(5 * time.Minute)
	for w.Stats().Reports < n {
		select {
		case <-tick.C:
		case <-deadline:
			b.Fatalf("folded %d of %d reports in 5 minutes: %+v", w.Stats().Reports, n, w.Stats())
		}
	}
}
