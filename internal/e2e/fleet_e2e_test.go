package e2e_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// Settings of the scenario's service.
const (
	permits          = 5
	successThreshold = 2
	scenarioConfig   = `{"half_open_max_calls":5,"success_threshold":2}`
)

func TestFleetSingleNode(t *testing.T) {
	t.Parallel()
	f := singleNode(t, topology.Config{Partitions: 4, Storage: jetstream.MemoryStorage})
	clk := newClock()
	w := f.startWorker(t, "bw-1", clk.Now)
	runScenario(t, f, clk, w)
}

// TestFleetClusterWithStoppedNode runs the scenario on a three-node cluster,
// replicas 3, with one node stopped after the worker started: clients that
// were connected to it fail over, streams and buckets keep their quorum.
func TestFleetClusterWithStoppedNode(t *testing.T) {
	t.Parallel()
	env := testenv.NATSCluster(t, 3)
	f := newFleet(t, env.JS, func(tb testing.TB) *nats.Conn { return env.Connect(tb) },
		topology.Config{Partitions: 4, Replicas: 3, LeaseTTL: 2 * time.Second})
	clk := newClock()
	w1 := f.startWorker(t, "bw-1", clk.Now)
	w2 := f.startWorker(t, "bw-2", clk.Now)
	env.StopNode(t, 2)
	env.WaitReady(t)
	runScenario(t, f, clk, w1, w2)
}

// runScenario drives one service through the breaker's life with three SDK
// clients on three connections against the running workers:
//
//   - failures recorded on client A trip the breaker, seen as Allow false on
//     client B;
//   - past the recovery timeout, many goroutines on the three clients call
//     Allow at once: exactly half_open_max_calls permits are granted
//     fleet-wide by the workers' permit servers;
//   - success_threshold successes close the breaker, with exactly one closed
//     event that carries trigger_replay.
func runScenario(t *testing.T, f *fleet, clk *clock, workers ...*worker) {
	t.Helper()
	const svc = "payments"
	f.setConfig(t, svc, scenarioConfig, workers...)
	opts := []baldur.Option{baldur.WithClock(clk.Now), baldur.WithRequestTimeout(10 * time.Second)}
	clients := []*baldur.Client{
		f.client(t, "node-a", opts...),
		f.client(t, "node-b", opts...),
		f.client(t, "node-c", opts...),
	}
	a, b := clients[0], clients[1]

	// Trip: the default rules (minimum_calls 10, failure_threshold 5).
	require.True(t, b.Allow(svc))
	for range 10 {
		a.Record(svc, baldur.Failure(time.Millisecond, "timeout"))
	}
	require.Eventually(t, func() bool { return !b.Allow(svc) }, waitFor, time.Millisecond,
		"the trip recorded on client A is not seen on client B")
	opened := f.state(t, svc, isState(domain.StateOpen))
	require.Equal(t, uint64(1), opened.Generation)
	for _, c := range clients {
		require.Eventually(t, func() bool { s, _ := c.State(svc); return s == baldur.StateOpen }, waitFor, time.Millisecond)
		require.False(t, c.Allow(svc), "open before recovery_at")
	}

	// Half-open permits: exactly half_open_max_calls across every caller.
	clk.Advance(domain.DefaultConfig().RecoveryTimeout.D() + time.Second)
	const goroutines, calls = 8, 10
	var (
		granted atomic.Int64
		wg      sync.WaitGroup
		startCh = make(chan struct{})
	)
	for _, c := range clients {
		for range goroutines {
			wg.Go(func() {
				<-startCh
				for range calls {
					if c.Allow(svc) {
						granted.Add(1)
					}
				}
			})
		}
	}
	close(startCh)
	wg.Wait()
	require.Equal(t, int64(permits), granted.Load(), "permits granted fleet-wide")
	var sdkGranted uint64
	for _, c := range clients {
		sdkGranted += c.Stats().PermitsGranted
	}
	require.Equal(t, uint64(permits), sdkGranted)
	half := f.state(t, svc, func(b domain.Breaker) bool { return b.State == domain.StateHalfOpen })
	require.Equal(t, permits, half.HalfOpen.Issued)
	require.Equal(t, permits, half.HalfOpen.Permits)

	// Close: success_threshold probe successes, one closed event with
	// trigger_replay.
	for range successThreshold {
		a.Record(svc, baldur.Success(time.Millisecond))
	}
	closed := f.state(t, svc, isState(domain.StateClosed))
	require.Equal(t, domain.ModeAuto, closed.Mode)
	evs := f.transitions(t, svc, domain.TransitionClosed)
	require.Len(t, evs, 1, "closed events")
	require.True(t, evs[0].TriggerReplay)
	require.Equal(t, domain.TriggerAuto, evs[0].Trigger)
	require.Equal(t, closed.Generation, evs[0].Generation)
	for _, c := range clients {
		require.Eventually(t, func() bool { return c.Allow(svc) }, waitFor, time.Millisecond)
	}
}
