package fleetstate_test

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/topology"
)

// BenchmarkInitialSync100k measures DESIGN §9's scale target: a new node's
// view of 100k breakers (each a realistic state of about 600 B of JSON, with
// a window bucket) is in sync in < 5 s and costs < 300 B per breaker. It
// reports sync-ms (Watch until the initial values are in) and B/breaker (live
// heap of the view after a GC, divided by the breakers).
//
//	go test -run '^$' -bench InitialSync100k -benchtime 1x ./internal/fleetstate
func BenchmarkInitialSync100k(b *testing.B) {
	const n = 100_000
	f := newFleet(b)
	putMany(b, f, 0, n)
	for b.Loop() {
		heapBefore := liveHeap()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		v, err := fleetstate.Watch(ctx, f.env.JS)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		if v.Len() != n {
			b.Fatalf("view holds %d breakers, want %d", v.Len(), n)
		}
		heapAfter := liveHeap()
		b.ReportMetric(float64(took.Milliseconds()), "sync-ms")
		b.ReportMetric(float64(heapAfter-heapBefore)/n, "B/breaker")
		runtime.KeepAlive(v)
		v.Stop()
	}
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkHandleLoadAllows is the SDK's hot path on a resolved handle: one
// atomic load and the admission rule.
func BenchmarkHandleLoadAllows(b *testing.B) {
	f := newFleet(b)
	f.put(b, closedWith("payments", 10, 0))
	v := f.watch(b)
	h := v.Handle("payments")
	now := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if h.Load().Allows(now) != domain.DecisionAllow {
				b.Fatal("denied")
			}
		}
	})
}

// BenchmarkViewHandleByName adds the lookup of the handle by service name.
func BenchmarkViewHandleByName(b *testing.B) {
	f := newFleet(b)
	f.put(b, closedWith("payments", 10, 0))
	v := f.watch(b)
	now := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v.Handle("payments").Load().Allows(now) != domain.DecisionAllow {
				b.Fatal("denied")
			}
		}
	})
}

// BenchmarkPropagation measures a breaker write on one connection reaching a
// view on another: KV put → watch → snapshot swapped → OnChange. It reports
// the p50 and p99 in microseconds.
func BenchmarkPropagation(b *testing.B) {
	f := newFleet(b)
	writer, err := jetstream.New(f.env.Connect(b))
	if err != nil {
		b.Fatal(err)
	}
	kv, err := writer.KeyValue(context.Background(), topology.BucketBreakers)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := fleetstate.Watch(ctx, jetstreamOn(b, f.env.Connect(b)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Stop)
	seen := make(chan uint64, 1)
	defer v.OnChange(func(s fleetstate.Snapshot) { seen <- s.Revision })()
	values := [][]byte{mustJSON(b, tripped("payments")), mustJSON(b, closedWith("payments", 10, 0))}
	var lat []time.Duration
	i := 0
	for b.Loop() {
		start := time.Now()
		rev, err := kv.Put(ctx, "payments", values[i%2])
		if err != nil {
			b.Fatal(err)
		}
		for r := range seen {
			if r == rev {
				break
			}
		}
		lat = append(lat, time.Since(start))
		i++
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func jetstreamOn(b *testing.B, nc *nats.Conn) jetstream.JetStream {
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	return js
}
