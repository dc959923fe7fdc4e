package domain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

func TestAdmit(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	later, earlier := now.Add(time.Second), now.Add(-time.Second)
	for _, tc := range []struct {
		name       string
		state      domain.State
		mode       domain.Mode
		recoveryAt time.Time
		want       domain.Decision
	}{
		{"closed", domain.StateClosed, domain.ModeAuto, time.Time{}, domain.DecisionAllow},
		{"open before recovery", domain.StateOpen, domain.ModeAuto, later, domain.DecisionDeny},
		{"open at recovery", domain.StateOpen, domain.ModeAuto, now, domain.DecisionAskPermit},
		{"open past recovery", domain.StateOpen, domain.ModeAuto, earlier, domain.DecisionAskPermit},
		{"half open", domain.StateHalfOpen, domain.ModeAuto, time.Time{}, domain.DecisionAskPermit},
		{"forced open", domain.StateOpen, domain.ModeForcedOpen, earlier, domain.DecisionDeny},
		{"forced closed", domain.StateClosed, domain.ModeForcedClosed, time.Time{}, domain.DecisionAllow},
		{"disabled while open", domain.StateOpen, domain.ModeDisabled, later, domain.DecisionAllow},
		{"metrics only while open", domain.StateOpen, domain.ModeMetricsOnly, later, domain.DecisionAllow},
		{"unknown state fails open", domain.State("melted"), domain.ModeAuto, time.Time{}, domain.DecisionAllow},
		{"unknown mode follows the state", domain.StateOpen, domain.Mode("future"), later, domain.DecisionDeny},
		{"empty state and mode", "", "", time.Time{}, domain.DecisionAllow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, domain.Admit(tc.state, tc.mode, tc.recoveryAt, now))
			b := domain.Breaker{State: tc.state, Mode: tc.mode, RecoveryAt: tc.recoveryAt}
			require.Equal(t, tc.want, b.Allows(now), "Breaker.Allows is Admit")
			if d, ok := domain.AdmitTimeless(tc.state, tc.mode); ok {
				require.Equal(t, tc.want, d, "AdmitTimeless agrees with Admit")
				require.Equal(t, d, domain.Admit(tc.state, tc.mode, tc.recoveryAt, time.Time{}), "and does not depend on the time")
			} else {
				require.Equal(t, domain.StateOpen, tc.state, "only an open breaker depends on the time")
			}
		})
	}
}

func BenchmarkAdmit(b *testing.B) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	rec := now.Add(time.Minute)
	for b.Loop() {
		if domain.Admit(domain.StateOpen, domain.ModeAuto, rec, now) != domain.DecisionDeny {
			b.Fatal("wrong decision")
		}
	}
}
