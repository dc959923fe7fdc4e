package watchdog_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/watchdog"
)

// TestRollupsPrunedOnSchedule: the leader deletes outcome rollups older
// than the rollup retention, at most once an hour, and keeps the rest.
func TestRollupsPrunedOnSchedule(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Second)
	wd := h.leader(watchdog.Config{})
	ctx := context.Background()
	now := h.clk.Now()
	add := func(age time.Duration) {
		t.Helper()
		require.NoError(t, h.store.AddRollups(ctx, []store.Rollup{{Service: "payments", Minute: now.Add(-age),
			Outcomes: store.Outcomes{Successes: 1}}}))
	}
	calls := func() int64 {
		t.Helper()
		sums, err := h.store.SumRollups(ctx, now.Add(-10*watchdog.DefaultRollupRetention))
		require.NoError(t, err)
		return sums["payments"].Calls()
	}
	add(watchdog.DefaultRollupRetention + time.Hour) // past the retention
	add(30 * 24 * time.Hour)                         // inside the longest SLO window
	add(time.Minute)

	require.NoError(t, wd.Tick(ctx))
	require.EqualValues(t, 1, wd.Stats().RollupsPruned)
	require.EqualValues(t, 2, calls(), "the rollups the error budget may need are kept")

	add(watchdog.DefaultRollupRetention + 2*time.Hour)
	require.NoError(t, wd.Tick(ctx))
	require.EqualValues(t, 1, wd.Stats().RollupsPruned, "not again within the hour")

	h.clk.Advance(watchdog.RollupPruneEvery)
	require.NoError(t, wd.Tick(ctx))
	require.EqualValues(t, 2, wd.Stats().RollupsPruned)
	require.EqualValues(t, 2, calls())
}

func TestRollupRetentionCoversTheSLOWindow(t *testing.T) {
	t.Parallel()
	err := watchdog.Config{Node: "wd", RollupRetention: 24 * time.Hour}.WithDefaults().Validate()
	require.ErrorIs(t, err, watchdog.ErrInvalidConfig)
	require.ErrorContains(t, err, "shorter than the longest SLO window")
}
