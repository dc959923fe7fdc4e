//go:build chaos

package chaos

import (
	"context"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fleetHeap estimates the live heap of everything in the process but the
// embedded nats-servers, from the runtime's sampled memory profile (as of
// the last GC): the servers keep, by design, every message id of the
// streams' two-minute duplicate window and their block caches, which grow
// with the load for the window's length and say nothing about Baldur.
func fleetHeap() uint64 {
	n, _ := runtime.MemProfile(nil, false)
	recs := make([]runtime.MemProfileRecord, n+64)
	n, ok := runtime.MemProfile(recs, false)
	if !ok {
		return 0
	}
	var total uint64
	for _, r := range recs[:n] {
		frames := runtime.CallersFrames(r.Stack())
		server := false
		for {
			f, more := frames.Next()
			if strings.Contains(f.Function, "nats-server/v2/server.") {
				server = true
				break
			}
			if !more {
				break
			}
		}
		if server || r.InUseBytes() <= 0 || r.AllocObjects == 0 {
			continue
		}
		// Unsample as pprof does: a sampled allocation of average size
		// s stands for 1/(1-exp(-s/rate)) of them.
		avg := float64(r.AllocBytes) / float64(r.AllocObjects)
		total += uint64(float64(r.InUseBytes()) / (1 - math.Exp(-avg/float64(runtime.MemProfileRate))))
	}
	return total
}

// TestChaosLoad is scenario 6: a sustained mix — 100 services' outcome
// reports at a fixed high rate, dead letters replayed continuously and
// breaker commands — for a fixed time against two breaker-workers, two
// replay-workers and a watchdog. Goroutine counts and live heap (the whole
// process: servers, workers and clients) are sampled during the load and
// must be flat at the end; then every report is folded exactly once, every
// transition published once and every dead letter stored once and settled.
func TestChaosLoad(t *testing.T) {
	h := New(t, "load", Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	const (
		duration = 45 * time.Second
		batch    = 100
	)
	// reportRate is the reports per second asked of the fleet, over 100
	// services: 4000 by default, 1000 under the race detector, which slows
	// the in-process servers and workers several times over (on two cores a
	// -race run acknowledged ~1800/s of the 4000 asked); BALDUR_CHAOS_LOAD_RATE
	// asks for another rate (a multiple of 100).
	reportRate := 4000 / (1 + 3*raceFactor)
	if v := os.Getenv("BALDUR_CHAOS_LOAD_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < batch || n%batch != 0 {
			t.Fatalf("BALDUR_CHAOS_LOAD_RATE=%q: want a multiple of %d", v, batch)
		}
		reportRate = n
	}
	t.Logf("chaos: load asks for %d reports/s", reportRate)
	svcs := names("svc", 100)
	countSvcs, flipSvcs, dlSvcs := svcs[:90], svcs[90:95], svcs[95:]
	for _, svc := range countSvcs {
		h.SetConfig(svc, countConfig)
	}
	for _, svc := range dlSvcs {
		h.SetConfig(svc, replayConfig)
	}
	h.StartBreakerWorker("bw-1")
	h.StartBreakerWorker("bw-2")
	h.StartReplayWorker("rw-1", ReplayOptions{})
	h.StartReplayWorker("rw-2", ReplayOptions{})
	h.StartWatchdog("wd-1")
	sink := h.NewReplaySink(replayVerdict(h.Seed()))
	service := h.Client("svc-handler")
	for _, svc := range dlSvcs {
		sink.Serve(service, svc)
	}
	reports := h.NewReports("svc-reporter")
	var first []Report
	for _, svc := range dlSvcs {
		first = append(first, Report{Service: svc, Successes: 1})
	}
	if err := reports.Send(ctx, first); err != nil {
		t.Fatal(err)
	}
	batches := make([][]Report, 100)
	for i := range batches {
		batches[i] = countReports(h, countSvcs, batch)
	}

	loadCtx, stopLoad := context.WithTimeout(ctx, duration)
	defer stopLoad()
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	var commands atomic.Int64
	letters := h.NewDeadLetters("svc-dlq")
	wg.Go(func() {
		tick := time.NewTicker(time.Second * batch / time.Duration(reportRate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
			if err := reports.Send(ctx, batches[i%len(batches)]); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for i := 0; loadCtx.Err() == nil; i++ {
			svc := flipSvcs[i%len(flipSvcs)]
			if _, err := h.Command(ctx, h.JS, svc, flipCommand((i/len(flipSvcs))%2 == 0)); err != nil {
				errs <- err
				return
			}
			commands.Add(1)
			_ = pause(loadCtx, 50*time.Millisecond)
		}
	})
	wg.Go(func() {
		for i := 0; loadCtx.Err() == nil; i++ {
			if _, err := letters.Submit(ctx, dlSvcs[i%len(dlSvcs)], i, 3); err != nil {
				errs <- err
				return
			}
			_ = pause(loadCtx, 20*time.Millisecond)
		}
	})

	type sample struct {
		at         time.Duration
		goroutines int
		heap       uint64
	}
	measure := func(at time.Duration) sample {
		runtime.GC()
		return sample{at: at, goroutines: runtime.NumGoroutine(), heap: fleetHeap()}
	}
	var samples []sample
	start := time.Now()
	for _, at := range []time.Duration{duration / 3, 2 * duration / 3, duration - 2*time.Second} {
		_ = pause(ctx, time.Until(start.Add(at)))
		s := measure(at)
		samples = append(samples, s)
		t.Logf("chaos: at %s: %d goroutines, fleet heap %.1f MiB, %d reports acknowledged", at, s.goroutines, float64(s.heap)/(1<<20), reports.Messages())
	}
	// BALDUR_CHAOS_HEAP_PROFILE=<file> keeps a heap profile taken under load.
	if path := os.Getenv("BALDUR_CHAOS_HEAP_PROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
		}
	}
	wg.Wait()
	close(errs)
	mustNotFail(t, errs)

	// Flat: the last sample under load is not above the first beyond a
	// margin for work in flight.
	first0, last := samples[0], samples[len(samples)-1]
	if last.goroutines > first0.goroutines+200 {
		h.Violation("goroutines grew under steady load: %d at %s, %d at %s", first0.goroutines, first0.at, last.goroutines, last.at)
	}
	// The heap under load holds the deliveries in flight, which grow with
	// the rate: one high sample is a peak, not growth. Growth is the floor
	// rising — both later samples above the first beyond the margin — or
	// a heap that does not come back once the load has settled (below).
	heapMargin := func(base uint64) uint64 { return base + base/2 + 32<<20 }
	if floor := min(samples[1].heap, last.heap); floor > heapMargin(first0.heap) {
		h.Violation("fleet heap (nats-servers excluded) grew under steady load: %.1f MiB at %s, at least %.1f MiB from %s on",
			float64(first0.heap)/(1<<20), first0.at, float64(floor)/(1<<20), samples[1].at)
	}
	if rate := float64(reports.Messages()) / duration.Seconds(); rate < float64(reportRate)/2 {
		h.Violation("only %.0f reports/s acknowledged, the load asked for %d", rate, reportRate)
	}

	settle(ctx, h, reports, dlSvcs, 60*time.Second)
	after := measure(time.Since(start))
	t.Logf("chaos: settled: %d goroutines, fleet heap %.1f MiB", after.goroutines, float64(after.heap)/(1<<20))
	if after.goroutines > first0.goroutines+200 {
		h.Violation("goroutines did not come back after the load: %d under load, %d after", first0.goroutines, after.goroutines)
	}
	if after.heap > heapMargin(first0.heap) {
		h.Violation("fleet heap did not come back after the load: %.1f MiB under load at %s, %.1f MiB settled",
			float64(first0.heap)/(1<<20), first0.at, float64(after.heap)/(1<<20))
	}
	h.CheckFolded(ctx, reports.AckedAll())
	n := h.CheckTransitions(ctx, svcs)
	entries := h.CheckDeadLetters(ctx, letters.Acked(), sink, ReplayedOrEscalated)
	t.Logf("chaos: %d transition events, %d replay deliveries, %d commands", n, sink.Deliveries(), commands.Load())
	h.Finish(Totals{Messages: reports.Messages() + commands.Load() + letters.Messages(), Entries: entries})
}
