//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestChaosWorkerCrashes is scenario 1: breaker-workers and replay-workers
// are killed at random points while reports, commands and dead letters
// flow — abruptly at any moment, between a breaker write and its ack, and in
// the middle of a replay batch — and replacements are started. Invariants:
// every report folded exactly once (window totals equal the acknowledged
// reports), every transition event exactly once, every acknowledged dead
// letter in PostgreSQL exactly once, no entry delivered twice concurrently,
// every entry ends replayed or escalated.
func TestChaosWorkerCrashes(t *testing.T) {
	// Scenarios run one at a time: each has a three-node cluster and its
	// own fault timing on a machine of two cores.
	h := New(t, "worker-crashes", Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	countSvcs, flipSvcs, dlSvcs := names("count", 8), names("flip", 4), names("dl", 4)
	for _, svc := range countSvcs {
		h.SetConfig(svc, countConfig)
	}
	for _, svc := range dlSvcs {
		h.SetConfig(svc, replayConfig)
	}

	next := 0
	newBW := func() *BreakerWorker { next++; return h.StartBreakerWorker(fmt.Sprintf("bw-%d", next)) }
	newRW := func() *ReplayWorker { next++; return h.StartReplayWorker(fmt.Sprintf("rw-%d", next), ReplayOptions{}) }
	bws := []*BreakerWorker{newBW(), newBW(), newBW()}
	rws := []*ReplayWorker{newRW(), newRW()}
	h.StartWatchdog("wd-1")

	sink := h.NewReplaySink(replayVerdict(h.Seed()))
	service := h.Client("svc-handler")
	for _, svc := range dlSvcs {
		sink.Serve(service, svc)
	}
	reports := h.NewReports("svc-reporter")
	// The replayed services' breakers exist and are closed.
	var first []Report
	for _, svc := range dlSvcs {
		first = append(first, Report{Service: svc, Successes: 1})
	}
	if err := reports.Send(ctx, first); err != nil {
		t.Fatal(err)
	}

	// Load: reports, flip commands and dead letters until the faults end.
	loadCtx, stopLoad := context.WithCancel(ctx)
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	var commands atomic.Int64
	letters := h.NewDeadLetters("svc-dlq")
	batches := make([][]Report, 400)
	for i := range batches {
		batches[i] = countReports(h, countSvcs, 25)
	}
	wg.Go(func() {
		for i := 0; loadCtx.Err() == nil; i++ {
			if err := reports.Send(ctx, batches[i%len(batches)]); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		if err := flipCommands(loadCtx, ctx, h, flipSvcs, 20*time.Millisecond, &commands); err != nil {
			errs <- err
		}
	})
	wg.Go(func() {
		if err := submitLetters(loadCtx, ctx, letters, dlSvcs, 15*time.Millisecond); err != nil {
			errs <- err
		}
	})

	// Faults.
	start := time.Now()
	faultPhase := 40 * time.Second
	if testing.Short() {
		faultPhase = 3 * time.Second
	}
	for time.Since(start) < faultPhase {
		_ = pause(ctx, h.Duration(300*time.Millisecond, 1500*time.Millisecond))
		switch k := h.IntN(4); k {
		case 0:
			i := h.IntN(len(bws))
			h.Fault("kill-breaker-worker", bws[i].Name()+" at "+since(start))
			bws[i].Kill()
			bws[i] = newBW()
		case 1:
			i := h.IntN(len(bws))
			fired := bws[i].ArmCrashAfterWrite()
			select {
			case <-fired:
				h.Fault("crash-between-write-and-ack", bws[i].Name()+" at "+since(start))
			case <-time.After(5 * time.Second):
				bws[i].Link.Arm(nil)
				h.Fault("kill-breaker-worker", bws[i].Name()+" (write trap did not fire in 5s) at "+since(start))
			}
			bws[i].Kill()
			bws[i] = newBW()
		case 2:
			i := h.IntN(len(rws))
			fired := rws[i].ArmCrashMidBatch(1 + h.IntN(10))
			select {
			case <-fired:
				h.Fault("crash-mid-replay-batch", rws[i].Name()+" at "+since(start))
			case <-time.After(5 * time.Second):
				rws[i].Link.Arm(nil)
				h.Fault("kill-replay-worker", rws[i].Name()+" (batch trap did not fire in 5s) at "+since(start))
			}
			rws[i].Kill()
			rws[i] = newRW()
		default:
			i := h.IntN(len(rws))
			h.Fault("kill-replay-worker", rws[i].Name()+" at "+since(start))
			rws[i].Kill()
			rws[i] = newRW()
		}
	}
	stopLoad()
	wg.Wait()
	close(errs)
	mustNotFail(t, errs)

	settle(ctx, h, reports, dlSvcs, 60*time.Second)
	h.CheckFolded(ctx, reports.AckedAll())
	all := append(append(append([]string{}, countSvcs...), flipSvcs...), dlSvcs...)
	events := h.CheckTransitions(ctx, all)
	entries := h.CheckDeadLetters(ctx, letters.Acked(), sink, ReplayedOrEscalated)
	audited := h.CheckAudit(ctx, all)
	t.Logf("chaos: %d transition events, %d replay deliveries, %d commands, %d audit records", events, sink.Deliveries(), commands.Load(), audited)
	for _, kind := range []string{"crash-between-write-and-ack", "crash-mid-replay-batch"} {
		if h.FaultsOf(kind) == 0 {
			t.Logf("chaos: no %s fault this run", kind)
		}
	}
	h.Finish(Totals{Messages: reports.Messages() + commands.Load() + letters.Messages(), Entries: entries})
}
