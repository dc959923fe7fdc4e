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

// TestChaosNodeLoss is scenario 2: each of the three NATS nodes, in a seeded
// order, is stopped and restarted while reports, commands and dead letters
// flow. While a node is down the fleet keeps deciding (reports acknowledged
// after the loss are folded, commands applied) and replaying; within 10 s of
// the node's recovery everything acknowledged before it is folded and every
// worker's view has caught up with the stored breakers. The scenario's
// invariants of scenario 1 hold at the end.
func TestChaosNodeLoss(t *testing.T) {
	h := New(t, "node-loss", Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	countSvcs, flipSvcs, dlSvcs := names("count", 8), names("flip", 4), names("dl", 4)
	for _, svc := range countSvcs {
		h.SetConfig(svc, countConfig)
	}
	for _, svc := range dlSvcs {
		h.SetConfig(svc, replayConfig)
	}
	bws := []*BreakerWorker{h.StartBreakerWorker("bw-1"), h.StartBreakerWorker("bw-2")}
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

	loadCtx, stopLoad := context.WithCancel(ctx)
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	var commands atomic.Int64
	letters := h.NewDeadLetters("svc-dlq")
	batches := make([][]Report, 200)
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
		if err := flipCommands(loadCtx, ctx, h, flipSvcs, 25*time.Millisecond, &commands); err != nil {
			errs <- err
		}
	})
	wg.Go(func() {
		if err := submitLetters(loadCtx, ctx, letters, dlSvcs, 20*time.Millisecond); err != nil {
			errs <- err
		}
	})

	allSvcs := append(append(append([]string{}, countSvcs...), flipSvcs...), dlSvcs...)
	const converge = 10 * time.Second
	_ = pause(ctx, 2*time.Second)
	for _, node := range h.Perm(3) {
		start := time.Now()
		h.Cluster.StopNode(t, node)
		h.Fault("nats-node-lost", fmt.Sprintf("node %d", node))
		// The fleet keeps deciding and replaying without the node.
		_ = pause(ctx, time.Second)
		during := reports.AckedAll()
		cmdsBefore, delivBefore := commands.Load(), sink.Deliveries()
		if !h.Until(20*time.Second, 100*time.Millisecond, func() bool { return h.FoldedAtLeast(ctx, during) }) {
			h.Violation("node %d down: reports acknowledged during the loss not folded within 20s", node)
		}
		if !h.Until(20*time.Second, 100*time.Millisecond, func() bool {
			return commands.Load() > cmdsBefore && sink.Deliveries() > delivBefore
		}) {
			h.Violation("node %d down: no command applied or no replay delivered within 20s", node)
		}
		_ = pause(ctx, h.Duration(time.Second, 3*time.Second))

		h.Cluster.RestartNode(t, node)
		recovered := time.Now()
		h.Fault("nats-node-restarted", fmt.Sprintf("node %d after %s", node, since(start)))
		acked := reports.AckedAll()
		states, err := h.Breakers(ctx, allSvcs)
		if err != nil {
			t.Fatalf("chaos: read breakers: %v", err)
		}
		ok := h.Until(converge, 50*time.Millisecond, func() bool {
			if !h.FoldedAtLeast(ctx, acked) {
				return false
			}
			for _, w := range bws {
				for svc, b := range states {
					if s, found := w.View().Snapshot(svc); b.Generation > 0 && (!found || s.Generation < b.Generation) {
						return false
					}
				}
			}
			return true
		})
		if !ok {
			h.Violation("node %d: state did not converge within %s of its recovery", node, converge)
		} else {
			t.Logf("chaos: node %d: converged %s after recovery", node, since(recovered))
		}
	}
	stopLoad()
	wg.Wait()
	close(errs)
	mustNotFail(t, errs)

	settle(ctx, h, reports, dlSvcs, 60*time.Second)
	h.CheckFolded(ctx, reports.AckedAll())
	n := h.CheckTransitions(ctx, allSvcs)
	entries := h.CheckDeadLetters(ctx, letters.Acked(), sink, ReplayedOrEscalated)
	audited := h.CheckAudit(ctx, allSvcs)
	t.Logf("chaos: %d transition events, %d replay deliveries, %d commands, %d audit records", n, sink.Deliveries(), commands.Load(), audited)
	h.Finish(Totals{Messages: reports.Messages() + commands.Load() + letters.Messages(), Entries: entries})
}
