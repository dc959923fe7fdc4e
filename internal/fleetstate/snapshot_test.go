package fleetstate

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

func TestDecodeSnapshot(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, value string
		want        *Snapshot
		wantErr     string
	}{
		{
			name:  "open, recovery_at in another zone",
			value: `{"service":"payments","state":"open","mode":"auto","generation":3,"recovery_at":"2026-11-26T13:01:00+01:00","window":{"successes":4,"failures":6,"buckets":[{"start":"2026-11-26T12:00:00Z"}]},"half_open":{"permits":0}}`,
			want: &Snapshot{Service: "payments", State: domain.StateOpen, Mode: domain.ModeAuto, Generation: 3,
				RecoveryAt: time.Date(2026, 11, 26, 12, 1, 0, 0, time.UTC), Successes: 4, Failures: 6, Revision: 9},
		},
		{
			name:  "empty state and mode are closed and auto",
			value: `{"service":"payments"}`,
			want:  &Snapshot{Service: "payments", State: domain.StateClosed, Mode: domain.ModeAuto, Revision: 9},
		},
		{
			name:  "unknown state kept",
			value: `{"service":"payments","state":"melted","mode":"future"}`,
			want:  &Snapshot{Service: "payments", State: "melted", Mode: "future", Revision: 9},
		},
		{name: "not JSON", value: `{`, wantErr: "undecodable breaker state: key payments"},
		{name: "other service", value: `{"service":"search"}`, wantErr: `holds the breaker of "search"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeSnapshot("payments", []byte(tc.value), 9)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrBadState)
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestSnapshotAllows(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var none *Snapshot
	require.Equal(t, domain.DecisionAllow, none.Allows(now), "no state is closed")
	d, ok := none.AllowsTimeless()
	require.True(t, ok)
	require.Equal(t, domain.DecisionAllow, d)

	open := &Snapshot{State: domain.StateOpen, Mode: domain.ModeAuto, RecoveryAt: now.Add(time.Minute)}
	require.Equal(t, domain.DecisionDeny, open.Allows(now))
	require.Equal(t, domain.DecisionAskPermit, open.Allows(now.Add(time.Minute)))
	_, ok = open.AllowsTimeless()
	require.False(t, ok, "an open breaker needs the time")

	half := &Snapshot{State: domain.StateHalfOpen, Mode: domain.ModeAuto}
	d, ok = half.AllowsTimeless()
	require.True(t, ok)
	require.Equal(t, domain.DecisionAskPermit, d)
}

// Not parallel: testing.AllocsPerRun refuses to run beside parallel tests.
func TestHotPathDoesNotAllocate(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	r := newRegistry()
	h, _ := r.getOrCreate("payments", now)
	h.p.Store(&Snapshot{Service: "payments", State: domain.StateOpen, Mode: domain.ModeAuto, RecoveryAt: now})
	r.promoteDue(now, true)
	require.Zero(t, testing.AllocsPerRun(100, func() {
		if r.get("payments").Load().Allows(now) != domain.DecisionAskPermit {
			t.Fatal("wrong decision")
		}
	}))
}
