package breaker

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
)

func TestErrorBudgetValue(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	f := func(v float64) *float64 { return &v }
	enc := func(b domain.ErrorBudget) []byte {
		v, err := json.Marshal(b)
		require.NoError(t, err)
		return v
	}
	month := domain.Duration(domain.DefaultSLOWindow)
	computed := domain.ErrorBudget{Enabled: true, SLOTarget: 0.999, SLOWindow: month, Remaining: 0.15,
		Level: domain.ErrorBudgetWarning, TotalCalls: 1000, FailedCalls: 1, UpdatedAt: now.Add(-time.Minute)}
	tests := []struct {
		name    string
		cmd     events.GovernanceCommand
		old     []byte
		changed bool
		want    domain.ErrorBudget
	}{
		{"turned on from nothing, default window", events.GovernanceCommand{SLOTarget: f(0.999)}, nil, true,
			domain.ErrorBudget{Enabled: true, SLOTarget: 0.999, SLOWindow: month, Remaining: 1, Level: domain.ErrorBudgetOK, UpdatedAt: now}},
		{"turned on over an unreadable value", events.GovernanceCommand{SLOTarget: f(0.99), SLOWindow: domain.Duration(time.Hour)}, []byte("{"), true,
			domain.ErrorBudget{Enabled: true, SLOTarget: 0.99, SLOWindow: domain.Duration(time.Hour), Remaining: 1, Level: domain.ErrorBudgetOK, UpdatedAt: now}},
		{"same target and window", events.GovernanceCommand{SLOTarget: f(0.999)}, enc(computed), false, domain.ErrorBudget{}},
		{"new target keeps the computed budget", events.GovernanceCommand{SLOTarget: f(0.99)}, enc(computed), true,
			domain.ErrorBudget{Enabled: true, SLOTarget: 0.99, SLOWindow: month, Remaining: 0.15, Level: domain.ErrorBudgetWarning,
				TotalCalls: 1000, FailedCalls: 1, UpdatedAt: now}},
		{"new window", events.GovernanceCommand{SLOTarget: f(0.999), SLOWindow: domain.Duration(7 * 24 * time.Hour)}, enc(computed), true,
			domain.ErrorBudget{Enabled: true, SLOTarget: 0.999, SLOWindow: domain.Duration(7 * 24 * time.Hour), Remaining: 0.15,
				Level: domain.ErrorBudgetWarning, TotalCalls: 1000, FailedCalls: 1, UpdatedAt: now}},
		{"turned off", events.GovernanceCommand{SLOTarget: f(0)}, enc(computed), true, domain.ErrorBudget{Remaining: 1, UpdatedAt: now}},
		{"already off", events.GovernanceCommand{SLOTarget: f(0)}, enc(domain.ErrorBudget{}), false, domain.ErrorBudget{}},
		{"off when never set", events.GovernanceCommand{SLOTarget: f(0)}, nil, false, domain.ErrorBudget{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cmd.Action = events.ActionSetSLOTarget
			v, changed, err := governanceValue(tt.cmd, tt.old, now)
			require.NoError(t, err)
			require.Equal(t, tt.changed, changed)
			if !changed {
				return
			}
			var got domain.ErrorBudget
			require.NoError(t, json.Unmarshal(v, &got))
			require.Equal(t, tt.want, got)
			require.NoError(t, domain.Governance{ErrorBudget: got}.Validate())
		})
	}
	_, _, err := governanceValue(events.GovernanceCommand{Action: events.ActionSetSLOTarget, SLOTarget: f(1)}, nil, now)
	require.ErrorIs(t, err, domain.ErrInvalidSLOTarget)
}
