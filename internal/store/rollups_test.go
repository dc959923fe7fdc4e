package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/store"
)

func TestRollupsAddAndSum(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	m := func(minute, sec int) time.Time {
		return t0.Add(time.Duration(minute)*time.Minute + time.Duration(sec)*time.Second)
	}

	require.NoError(t, s.AddRollups(ctx, []store.Rollup{
		{Service: "payments", Minute: m(0, 5), Outcomes: store.Outcomes{Successes: 10, Failures: 1}},
		{Service: "payments", Minute: m(0, 50), Outcomes: store.Outcomes{Successes: 5, SlowCalls: 2}}, // same minute
		{Service: "payments", Minute: m(1, 0), Outcomes: store.Outcomes{Failures: 3}},
		{Service: "billing", Minute: m(2, 0), Outcomes: store.Outcomes{Successes: 7}},
	}))
	// Adding again accumulates.
	require.NoError(t, s.AddRollups(ctx, []store.Rollup{
		{Service: "payments", Minute: m(1, 30), Outcomes: store.Outcomes{Successes: 2, Failures: 2}},
	}))
	require.NoError(t, s.AddRollups(ctx, nil))

	sums, err := s.SumRollups(ctx, t0)
	require.NoError(t, err)
	require.Equal(t, map[string]store.Outcomes{
		"payments": {Successes: 17, Failures: 6, SlowCalls: 2},
		"billing":  {Successes: 7},
	}, sums)
	require.EqualValues(t, 23, sums["payments"].Calls())

	sums, err = s.SumRollups(ctx, m(1, 10)) // truncated to minute 1
	require.NoError(t, err)
	require.Equal(t, map[string]store.Outcomes{
		"payments": {Successes: 2, Failures: 5},
		"billing":  {Successes: 7},
	}, sums)

	n, err := s.PruneRollups(ctx, m(2, 0))
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	sums, err = s.SumRollups(ctx, time.Time{})
	require.NoError(t, err)
	require.Equal(t, map[string]store.Outcomes{"billing": {Successes: 7}}, sums)

	require.ErrorIs(t, s.AddRollups(ctx, []store.Rollup{{Service: "x", Minute: t0, Outcomes: store.Outcomes{Failures: -1}}}),
		store.ErrInvalidArgument)
	require.ErrorIs(t, s.AddRollups(ctx, []store.Rollup{{Minute: t0}}), store.ErrInvalidArgument)
}
