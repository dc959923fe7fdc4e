package baldur

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/events"
)

func TestMerge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		a, b, want events.OutcomeReport
		ok         bool
	}{
		{"later success resets trailing",
			events.OutcomeReport{Failures: 2, TrailingFailures: 2},
			events.OutcomeReport{Successes: 1, Failures: 1, TrailingFailures: 1},
			events.OutcomeReport{Successes: 1, Failures: 3, TrailingFailures: 1}, true},
		{"failures only add up",
			events.OutcomeReport{Successes: 1, Failures: 1, TrailingFailures: 0, FailureTypes: map[string]int64{"A": 1}},
			events.OutcomeReport{Failures: 2, TrailingFailures: 2, SlowCalls: 1, FailureTypes: map[string]int64{"A": 1, "B": 1}},
			events.OutcomeReport{Successes: 1, Failures: 3, TrailingFailures: 2, SlowCalls: 1, FailureTypes: map[string]int64{"A": 2, "B": 1}}, true},
		{"over the count bound",
			events.OutcomeReport{Successes: events.MaxCount},
			events.OutcomeReport{Successes: 1},
			events.OutcomeReport{Successes: events.MaxCount}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := tc.a
			require.Equal(t, tc.ok, merge(&got, tc.b))
			require.Equal(t, tc.want, got)
			require.NoError(t, got.Validate())
		})
	}
}

func TestClampTypes(t *testing.T) {
	t.Parallel()
	r := events.OutcomeReport{Failures: 2, TrailingFailures: 2, FailureTypes: map[string]int64{"A": 2, "B": 1}}
	clampTypes(&r)
	require.NoError(t, r.Validate())
	var sum int64
	for _, v := range r.FailureTypes {
		sum += v
	}
	require.Equal(t, int64(2), sum)
}

func TestClipText(t *testing.T) {
	t.Parallel()
	require.Equal(t, "a\tb\nc d", clipText("a\tb\nc\x00d", 100))
	require.Equal(t, "é", clipText("éé", 3))
	require.Equal(t, "\uFFFD", clipText("\xff", 10))
}

func TestBufferBound(t *testing.T) {
	t.Parallel()
	b := newBuffer(2)
	one := events.OutcomeReport{Successes: 1}
	b.put(&pending{svc: "a", report: one})
	b.put(&pending{svc: "a", report: one})                    // merged
	b.put(&pending{svc: "a", report: one, maybeStored: true}) // kept apart
	b.put(&pending{svc: "b", report: one})                    // dropped
	n, calls, dropped, droppedCalls := b.stats()
	require.Equal(t, 2, n)
	require.Equal(t, int64(3), calls)
	require.Equal(t, uint64(1), dropped)
	require.Equal(t, uint64(1), droppedCalls)
	require.Len(t, b.takeAll(), 2)
	n, _, _, _ = b.stats()
	require.Zero(t, n)
}
