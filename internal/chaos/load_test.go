//go:build chaos

package chaos

import (
	"context"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
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
// replay-workers and a watchdog. Goroutine counts must stay flat under the
// load, and once it has settled the fleet's heap (the embedded servers
// excluded) and goroutines must be back at what they were early in it; then
// every report is folded exactly once, every transition published once and
// every dead letter stored once and settled.
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

	letters := h.NewDeadLetters("svc-dlq")
	start := time.Now()
	loadCtx, stopLoad := context.WithTimeout(ctx, duration)
	defer stopLoad()
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	var commands atomic.Int64
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
		if err := flipCommands(loadCtx, ctx, h, flipSvcs, 50*time.Millisecond, &commands); err != nil {
			errs <- err
		}
	})
	wg.Go(func() {
		if err := submitLetters(loadCtx, ctx, letters, dlSvcs, 20*time.Millisecond); err != nil {
			errs <- err
		}
	})

	type sample struct {
		at         time.Duration
		goroutines int
		heap, live uint64
	}
	measure := func(at time.Duration) sample {
		// Three collections in a row, so that the memory profile has
		// published the frees of everything allocated before the first.
		for range 3 {
			runtime.GC()
		}
		return sample{at: at, goroutines: runtime.NumGoroutine(), heap: fleetHeap(), live: processLiveHeap()}
	}
	// Samples every few seconds of the load, from a warm-up on. The
	// goroutines are judged under load: the floor of the last third of the
	// samples must not be above the floor of the first third beyond a
	// margin. The fleet's heap is judged once the load has settled (below):
	// under a sustained high allocation rate the memory profile's in-use
	// figures run ahead of what is live (see docs/reliability.md: at 20k
	// reports/s they climbed to 60 MiB for a reporter that holds at most 100
	// messages, whose objects weak pointers showed freed, and fell back
	// within a sample of the load ending), so they are logged, not judged.
	const warmUp, every = 5 * time.Second, 3 * time.Second
	var samples []sample
	for at := warmUp; at < duration; at += every {
		_ = pause(loadCtx, time.Until(start.Add(at)))
		if loadCtx.Err() != nil {
			break
		}
		s := measure(at)
		samples = append(samples, s)
		t.Logf("chaos: at %s: %d goroutines, fleet heap %.1f MiB (profile), process live heap %.1f MiB, %d reports acknowledged",
			at, s.goroutines, mib(s.heap), mib(s.live), reports.Messages())
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
	if len(samples) < 3 {
		t.Fatalf("chaos: only %d samples under load", len(samples))
	}

	third := len(samples) / 3
	earlySamples, lateSamples := samples[:third], samples[len(samples)-third:]
	goroutines := func(s sample) int { return s.goroutines }
	earlyG, lateG := floorOf(earlySamples, goroutines), floorOf(lateSamples, goroutines)
	early := floorOf(earlySamples, func(s sample) uint64 { return s.heap })
	if lateG > earlyG+200 {
		h.Violation("goroutines grew under steady load: at least %d early, at least %d late", earlyG, lateG)
	}
	if rate := float64(reports.Messages()) / duration.Seconds(); rate < float64(reportRate)/2 {
		h.Violation("only %.0f reports/s acknowledged, the load asked for %d", rate, reportRate)
	}

	settle(ctx, h, reports, dlSvcs, 60*time.Second)
	after := measure(time.Since(start))
	t.Logf("chaos: settled: %d goroutines (floor under load %d early, %d late), fleet heap %.1f MiB (floor early under load %.1f MiB), process live heap %.1f MiB",
		after.goroutines, earlyG, lateG, mib(after.heap), mib(early), mib(after.live))
	if after.goroutines > earlyG+200 {
		h.Violation("goroutines did not come back after the load: at least %d under load, %d after", earlyG, after.goroutines)
	}
	if after.heap > early+early/2+16<<20 {
		h.Violation("fleet heap (nats-servers excluded) did not come back after the load: at least %.1f MiB early under load, %.1f MiB settled",
			mib(early), mib(after.heap))
	}
	h.CheckFolded(ctx, reports.AckedAll())
	n := h.CheckTransitions(ctx, svcs)
	entries := h.CheckDeadLetters(ctx, letters.Acked(), sink, ReplayedOrEscalated)
	t.Logf("chaos: %d transition events, %d replay deliveries, %d commands", n, sink.Deliveries(), commands.Load())
	h.Finish(Totals{Messages: reports.Messages() + commands.Load() + letters.Messages(), Entries: entries})
}

// floorOf is the least of f over samples.
func floorOf[S any, V int | uint64](samples []S, f func(S) V) V {
	floor := f(samples[0])
	for _, s := range samples[1:] {
		floor = min(floor, f(s))
	}
	return floor
}

// processLiveHeap is the whole process's live heap as of the last
// collection, the embedded servers included.
func processLiveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
