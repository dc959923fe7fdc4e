package watchdog_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/watchdog"
)

// countingDuty counts its runs.
type countingDuty struct{ runs atomic.Int64 }

func (d *countingDuty) Name() string { return "counting" }
func (d *countingDuty) Run(context.Context, time.Time) error {
	d.runs.Add(1)
	return nil
}

// TestFailover runs two watchdogs with their own tick loops: one is active,
// the standby does nothing while it lives, and takes over within 15 s (here
// the lease TTL is 3 s) when the active one dies or stops.
func TestFailover(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		end  func(w *watchdog.Watchdog)
	}{
		{"dies", func(w *watchdog.Watchdog) { w.Kill() }},
		{"stops", func(w *watchdog.Watchdog) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, w.Stop(ctx))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 3*time.Second)
			cfg := watchdog.Config{Tick: 20 * time.Millisecond, LeaseTTL: 3 * time.Second}
			da, db := &countingDuty{}, &countingDuty{}
			a := h.startWatchdog("wd-a", cfg, da)
			require.Eventually(t, a.IsLeader, 10*time.Second, 5*time.Millisecond)
			b := h.startWatchdog("wd-b", cfg, db)

			// While a lives, b stands by: no tick, no duty, ErrNotLeader.
			require.Eventually(t, func() bool { return da.runs.Load() >= 5 }, 10*time.Second, 5*time.Millisecond)
			require.False(t, b.IsLeader())
			require.ErrorIs(t, b.Tick(context.Background()), watchdog.ErrNotLeader)
			require.Zero(t, db.runs.Load())
			require.Zero(t, b.Stats().Ticks)

			start := time.Now()
			tc.end(a)
			require.Eventually(t, b.IsLeader, 15*time.Second, 10*time.Millisecond, "no takeover within 15 s")
			took := time.Since(start)
			t.Logf("failover after the active watchdog %s: %s (lease TTL 3s)", tc.name, took)
			require.Eventually(t, func() bool { return db.runs.Load() > 0 }, 5*time.Second, 5*time.Millisecond)
			require.False(t, a.IsLeader())
			require.Equal(t, int64(1), b.Stats().LeaderAcquired)

			// The old leader acts no more.
			n := da.runs.Load()
			require.Eventually(t, func() bool { return db.runs.Load() > 10 }, 5*time.Second, 5*time.Millisecond)
			require.Equal(t, n, da.runs.Load())
		})
	}
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Second)
	deps := watchdog.Deps{JS: h.js, Topology: h.top, Store: h.store, Configs: h.view}
	for _, tc := range []struct {
		name string
		cfg  watchdog.Config
		deps watchdog.Deps
		msg  string
	}{
		{"no node", watchdog.Config{}, deps, "Node is required"},
		{"tick", watchdog.Config{Node: "n", Tick: time.Millisecond}, deps, "tick 1ms"},
		{"lease", watchdog.Config{Node: "n", LeaseTTL: time.Millisecond}, deps, "lease TTL 1ms"},
		{"retention", watchdog.Config{Node: "n", Retention: -time.Second}, deps, "retention -1s"},
		{"batch", watchdog.Config{Node: "n", Batch: -1}, deps, "batch -1"},
		{"no store", watchdog.Config{Node: "n"}, watchdog.Deps{JS: h.js, Topology: h.top, Configs: h.view}, "Deps.Store"},
		{"nil duty", watchdog.Config{Node: "n"}, watchdog.Deps{JS: h.js, Topology: h.top, Store: h.store, Configs: h.view,
			Duties: []watchdog.Duty{nil}}, "Deps.Duties[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := watchdog.New(tc.cfg, tc.deps)
			require.ErrorIs(t, err, watchdog.ErrInvalidConfig)
			require.ErrorContains(t, err, tc.msg)
		})
	}
	w, err := watchdog.New(watchdog.Config{Node: "n"}, deps)
	require.NoError(t, err)
	require.ErrorIs(t, w.Tick(context.Background()), watchdog.ErrNotStarted)
	require.ErrorIs(t, w.Stop(context.Background()), watchdog.ErrNotStarted)
}
