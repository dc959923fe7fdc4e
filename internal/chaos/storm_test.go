//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baldurfleet/baldur"
	"github.com/baldurfleet/baldur/internal/domain"
)

// TestChaosHalfOpenStorm is scenario 4: thousands of goroutines on several
// SDK connections ask for a breaker's permits at once, period after period,
// while breaker-workers (the permit servers) are killed and replaced: never
// more than half_open_max_calls permits are granted in one half-open period.
func TestChaosHalfOpenStorm(t *testing.T) {
	h := New(t, "half-open-storm", Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	const (
		svc        = "storm"
		maxCalls   = 5
		clients    = 4
		goroutines = 500 // per client
		rounds     = 6
	)
	h.SetConfig(svc, fmt.Sprintf(`{"half_open_max_calls":%d,"recovery_timeout":"1s"}`, maxCalls))
	bws := []*BreakerWorker{h.StartBreakerWorker("bw-1"), h.StartBreakerWorker("bw-2"), h.StartBreakerWorker("bw-3")}
	h.StartWatchdog("wd-1")
	reports := h.NewReports("storm-reporter")
	cs := make([]*baldur.Client, clients)
	for i := range cs {
		cs[i] = h.Client(fmt.Sprintf("storm-node-%d", i), baldur.WithRequestTimeout(5*time.Second))
	}

	var messages, granted int64
	next := len(bws)
	for round := range rounds {
		// Trip (default rules: 10 calls, 5 consecutive failures), or re-open
		// from half-open.
		if err := reports.Send(ctx, []Report{{Service: svc, Failures: 10}}); err != nil {
			t.Fatal(err)
		}
		opened := waitBreaker(ctx, h, svc, func(b domain.Breaker) bool { return b.State == domain.StateOpen })
		half := waitBreaker(ctx, h, svc, func(b domain.Breaker) bool {
			return b.State == domain.StateHalfOpen && b.Generation > opened.Generation
		})
		for _, c := range cs {
			if !h.Until(Wait, 10*time.Millisecond, func() bool { s, _ := c.State(svc); return s == baldur.StateHalfOpen }) {
				t.Fatalf("chaos: round %d: a client never saw half-open", round)
			}
		}

		var (
			got   atomic.Int64
			calls atomic.Int64
			wg    sync.WaitGroup
			start = make(chan struct{})
		)
		stormEnd := time.Now().Add(1500 * time.Millisecond)
		for _, c := range cs {
			for range goroutines {
				wg.Go(func() {
					<-start
					for time.Now().Before(stormEnd) {
						calls.Add(1)
						if c.Allow(svc) {
							got.Add(1)
						}
					}
				})
			}
		}
		close(start)
		if h.IntN(2) == 0 {
			i := h.IntN(len(bws))
			_ = pause(ctx, h.Duration(0, 200*time.Millisecond))
			h.Fault("kill-permit-server", fmt.Sprintf("%s in round %d", bws[i].Name(), round))
			bws[i].Kill()
			next++
			bws[i] = h.StartBreakerWorker(fmt.Sprintf("bw-%d", next))
		}
		wg.Wait()
		after := waitBreaker(ctx, h, svc, func(domain.Breaker) bool { return true })
		if after.Generation == half.Generation && after.HalfOpen.Issued > maxCalls {
			h.Violation("round %d: %d permits issued in the stored period, at most %d", round, after.HalfOpen.Issued, maxCalls)
		}
		if g := got.Load(); g > maxCalls {
			h.Violation("round %d: %d permits granted to %d goroutines in one half-open period, at most %d", round, g, clients*goroutines, maxCalls)
		}
		t.Logf("chaos: round %d: %d permits granted of %d Allow calls by %d goroutines", round, got.Load(), calls.Load(), clients*goroutines)
		granted += got.Load()
		messages += got.Load() + 1
	}
	if granted == 0 {
		h.Violation("no permit granted in %d rounds: the storm never reached the permit servers", rounds)
	}
	h.CheckTransitions(ctx, []string{svc})
	h.Finish(Totals{Messages: messages})
}

// waitBreaker waits until svc's stored breaker satisfies ok and returns it.
func waitBreaker(ctx context.Context, h *Harness, svc string, ok func(domain.Breaker) bool) domain.Breaker {
	h.tb.Helper()
	var b domain.Breaker
	if !h.Until(Wait, 10*time.Millisecond, func() bool {
		states, err := h.Breakers(ctx, []string{svc})
		if err != nil {
			return false
		}
		b = states[svc]
		return len(b.PendingEvents) == 0 && ok(b)
	}) {
		h.tb.Fatalf("chaos: breaker %s never reached the wanted state; last %+v", svc, b)
	}
	return b
}
