package e2e_test

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// minSamples is the fewest samples a propagation percentile is reported over.
const minSamples = 200

// BenchmarkTripPropagation measures DESIGN §9's trip propagation: from the
// tripping Record on client A (connection 1) to Allow false on client B
// (connection 2), through a running breaker-worker, with the SDK's default
// settings (flush every 250 ms, a failure flushed at once) on the default
// topology (16 partitions, file storage). Its anchor is a raw KV put on one
// connection observed by a watch on another, on the same server. Each op
// takes one sample of each, one right after the other, so that both see the
// same load on a shared machine. Run with -benchtime 300x for percentiles
// over 300 samples (fewer than 200 report none).
//
// The service trips on one failure (minimum_calls 1, failure_threshold 1),
// so that each trip is one Record; between trips a close and an auto command
// reset the breaker (not timed). Trips are at least the SDK's failure flush
// gap apart: a failure within the gap after a flush waits out the rest of it
// (at most 5 ms), by design, to coalesce a burst into one report.
func BenchmarkTripPropagation(b *testing.B) {
	ctx := context.Background()
	env := testenv.NATS(b)
	f := newFleet(b, env.JS, func(tb testing.TB) *nats.Conn { return env.Connect(tb) }, topology.Config{})
	anchor := newKVAnchor(b, f)

	const svc = "propagation"
	w := f.startWorker(b, "bw-bench", nil)
	f.setConfig(b, svc, `{"minimum_calls":1,"failure_threshold":1}`, w)
	a := f.client(b, "node-a")
	ncB := f.connect(b)
	clientB, err := baldur.Connect(ctx, ncB, baldur.WithNodeID("node-b"))
	require.NoError(b, err)
	b.Cleanup(func() { _ = clientB.Close(context.Background()) })
	// A second view on B's connection signals the update that B's own view
	// receives on the same connection, so the wait needs no busy loop.
	jsB, err := jetstream.New(ncB)
	require.NoError(b, err)
	signal, err := fleetstate.Watch(ctx, jsB, fleetstate.WithoutConfig(), fleetstate.WithoutGovernance())
	require.NoError(b, err)
	b.Cleanup(signal.Stop)
	changes := make(chan fleetstate.Snapshot, 64)
	b.Cleanup(signal.OnChange(func(s fleetstate.Snapshot) {
		if s.Service == svc {
			select {
			case changes <- s:
			default:
			}
		}
	}))
	waitState := func(ok func(fleetstate.Snapshot) bool) {
		timeout := time.After(waitFor)
		for {
			select {
			case s := <-changes:
				if ok(s) {
					return
				}
			case <-timeout:
				b.Fatalf("breaker %s: the wanted state never arrived", svc)
			}
		}
	}
	closedAuto := func(s fleetstate.Snapshot) bool { return s.State == domain.StateClosed && s.Mode == domain.ModeAuto }
	open := func(s fleetstate.Snapshot) bool { return s.State == domain.StateOpen }

	brkA, brkB := a.Breaker(svc), clientB.Breaker(svc)
	kvSamples := make([]time.Duration, 0, b.N)
	tripSamples := make([]time.Duration, 0, b.N)
	var lastRecord time.Time
	for b.Loop() {
		b.StopTimer()
		if !brkB.Allow() {
			f.command(b, svc, events.BreakerCommand{Action: domain.ActionClose, Actor: "bench", Reason: "reset"})
			f.command(b, svc, events.BreakerCommand{Action: domain.ActionAuto, Actor: "bench", Reason: "reset"})
			waitState(closedAuto)
			for !brkB.Allow() { // B's own view has the same update a moment later
				runtime.Gosched()
			}
		}
		drain(changes)
		kvSamples = append(kvSamples, anchor.sample(b))
		if d := baldur.DefaultFailureFlushGap - time.Since(lastRecord); d > 0 {
			time.Sleep(d) // pacing, see above
		}
		b.StartTimer()

		start := time.Now()
		lastRecord = start
		brkA.Record(baldur.Failure(time.Millisecond, "timeout"))
		waitState(open)
		for brkB.Allow() {
			runtime.Gosched()
		}
		tripSamples = append(tripSamples, time.Since(start))
	}
	b.ReportMetric(0, "ns/op")
	reportPercentiles(b, "kv", kvSamples)
	reportPercentiles(b, "trip", tripSamples)
}

// kvAnchor puts a key on one connection and waits for a watch on another.
type kvAnchor struct {
	kv    jetstream.KeyValue
	watch jetstream.KeyWatcher
	value []byte
}

func newKVAnchor(b *testing.B, f *fleet) *kvAnchor {
	ctx := context.Background()
	js1, err := jetstream.New(f.connect(b))
	require.NoError(b, err)
	js2, err := jetstream.New(f.connect(b))
	require.NoError(b, err)
	kv1, err := js1.KeyValue(ctx, topology.BucketBreakers)
	require.NoError(b, err)
	kv2, err := js2.KeyValue(ctx, topology.BucketBreakers)
	require.NoError(b, err)
	w, err := kv2.Watch(ctx, "anchor", jetstream.UpdatesOnly())
	require.NoError(b, err)
	b.Cleanup(func() { _ = w.Stop() })
	return &kvAnchor{kv: kv1, watch: w,
		value: []byte(`{"service":"anchor","state":"open","mode":"auto","generation":1}`)}
}

func (k *kvAnchor) sample(b *testing.B) time.Duration {
	start := time.Now()
	rev, err := k.kv.Put(context.Background(), "anchor", k.value)
	if err != nil {
		b.Fatal(err)
	}
	for e := range k.watch.Updates() {
		if e != nil && e.Revision() >= rev {
			break
		}
	}
	return time.Since(start)
}

func drain(ch chan fleetstate.Snapshot) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// reportPercentiles reports p50, p99 and the maximum of samples in µs, named
// after what.
func reportPercentiles(b *testing.B, what string, samples []time.Duration) {
	b.Helper()
	if len(samples) < minSamples {
		b.Logf("%d samples; run with -benchtime %dx or more for percentiles", len(samples), minSamples)
		return
	}
	slices.Sort(samples)
	at := func(q float64) float64 {
		return float64(samples[int(q*float64(len(samples)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), what+"-p50-µs")
	b.ReportMetric(at(0.99), what+"-p99-µs")
	b.ReportMetric(float64(samples[len(samples)-1].Nanoseconds())/1e3, what+"-max-µs")
}
