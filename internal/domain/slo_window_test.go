package domain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

func TestSLOWindow(t *testing.T) {
	t.Parallel()
	require.Equal(t, domain.DefaultSLOWindow, domain.ErrorBudget{}.Window())
	require.Equal(t, time.Hour, domain.ErrorBudget{SLOWindow: domain.Duration(time.Hour)}.Window())
	for _, w := range []time.Duration{domain.MinSLOWindow, 720 * time.Hour, domain.MaxSLOWindow} {
		require.NoError(t, domain.ValidateSLOWindow(w), w)
	}
	for _, w := range []time.Duration{0, time.Minute, domain.MaxSLOWindow + time.Hour} {
		require.ErrorIs(t, domain.ValidateSLOWindow(w), domain.ErrInvalidSLOWindow, w)
	}
	g := domain.Governance{ErrorBudget: domain.ErrorBudget{Enabled: true, SLOTarget: 0.999, SLOWindow: domain.Duration(time.Minute), Remaining: 1}}
	require.ErrorIs(t, g.Validate(), domain.ErrInvalidSLOWindow)
	g.ErrorBudget.SLOWindow = domain.Duration(24 * time.Hour)
	require.NoError(t, g.Validate())
}
