package baldur_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur"
)

func TestEmergencyLevelShedsByTier(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	ctx := context.Background()
	for svc, tier := range map[string]int{"payments": 1, "search": 2} {
		_, err := f.top.ConfigKV.Put(ctx, svc, fmt.Appendf(nil, `{"tier": %d}`, tier))
		require.NoError(t, err)
	}
	c := f.connect(t)
	// setLevel sets the emergency level and waits until the client sheds (or
	// admits) probe, a service whose admission flips at that level.
	setLevel := func(level int, probe string, admitted bool) {
		t.Helper()
		_, err := f.top.Governance.Put(ctx, "emergency_level",
			fmt.Appendf(nil, `{"level": %d, "actor": "sre", "reason": "drill"}`, level))
		require.NoError(t, err)
		require.Eventually(t, func() bool { return c.Allow(probe) == admitted }, waitFor, time.Millisecond)
	}

	setLevel(1, "recs", false) // "recs" is unconfigured: tier 3, the first shed
	require.True(t, c.Allow("payments"))
	require.True(t, c.Allow("search"))
	err := c.Execute(ctx, "recs", func(context.Context) error { return nil })
	require.ErrorIs(t, err, baldur.ErrEmergency)
	require.True(t, baldur.IsRefusal(err))

	setLevel(2, "search", false)
	require.True(t, c.Allow("payments"), "tier 1 keeps running at LEVEL_2")
	require.False(t, c.Allow("search"))

	setLevel(3, "payments", false) // tier 1 now runs at half: some calls are shed
	require.False(t, c.Allow("search"))
	admitted := 0
	const calls = 4000
	for range calls {
		if c.Allow("payments") {
			admitted++
		}
	}
	require.InDelta(t, calls/2, admitted, calls/10, "LEVEL_3 runs tier 1 at half")

	setLevel(0, "recs", true)
	require.True(t, c.Allow("payments"))
	require.True(t, c.Allow("search"))
}
