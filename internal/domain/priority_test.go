package domain_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

func TestParsePriority(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    domain.Priority
		wantErr bool
	}{
		{"", domain.PriorityNormal, false},
		{"critical", domain.PriorityCritical, false},
		{"normal", domain.PriorityNormal, false},
		{"low", domain.PriorityLow, false},
		{"CRITICAL", "", true},
		{"high", "", true},
		{" low", "", true},
	}
	for _, tt := range tests {
		got, err := domain.ParsePriority(tt.in)
		if tt.wantErr {
			require.ErrorIs(t, err, domain.ErrInvalidPriority, tt.in)
			require.ErrorContains(t, err, fmt.Sprintf("%q", tt.in))
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got)
		require.True(t, got.Valid())
	}
	require.False(t, domain.Priority("").Valid())
}

func TestPriority_RankCriticalNormalLowUnconfigured(t *testing.T) {
	t.Parallel()
	tests := map[domain.Priority]int{
		domain.PriorityCritical: 0,
		domain.PriorityNormal:   1,
		domain.PriorityLow:      2,
		"":                      3,
		"urgent":                3,
	}
	for p, want := range tests {
		require.Equal(t, want, p.Rank(), "%q", p)
	}
	for i, p := range domain.Priorities {
		require.Equal(t, i, p.Rank(), "Priorities is in replay order")
	}
}

func TestPriorityRankSQL_MatchesRank(t *testing.T) {
	t.Parallel()
	for _, p := range domain.Priorities {
		require.Contains(t, domain.PriorityRankSQL, fmt.Sprintf("WHEN '%s' THEN %d", p, p.Rank()))
	}
	require.True(t, strings.HasSuffix(domain.PriorityRankSQL, fmt.Sprintf("ELSE %d END", domain.RankUnconfigured)))
}

func TestCompareDLQEntries_PriorityThenOldestThenID(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	want := []domain.DLQEntry{
		{ID: "c-old", Priority: domain.PriorityCritical, CreatedAt: t0},
		{ID: "c-new", Priority: domain.PriorityCritical, CreatedAt: t0.Add(time.Hour)},
		{ID: "n-a", Priority: domain.PriorityNormal, CreatedAt: t0.Add(-time.Hour)},
		{ID: "n-b", Priority: domain.PriorityNormal, CreatedAt: t0.Add(-time.Hour)},
		{ID: "n-new", Priority: domain.PriorityNormal, CreatedAt: t0.Add(2 * time.Hour)},
		{ID: "l-oldest", Priority: domain.PriorityLow, CreatedAt: t0.Add(-48 * time.Hour)},
		{ID: "u", Priority: "", CreatedAt: t0.Add(-72 * time.Hour)},
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for range 50 {
		got := slices.Clone(want)
		rng.Shuffle(len(got), func(i, j int) { got[i], got[j] = got[j], got[i] })
		slices.SortFunc(got, domain.CompareDLQEntries)
		require.Equal(t, want, got)
	}
	// A total order: equal only to itself, antisymmetric.
	for i, a := range want {
		for j, b := range want {
			c := domain.CompareDLQEntries(a, b)
			require.Equal(t, -c, domain.CompareDLQEntries(b, a))
			require.Equal(t, i == j, c == 0)
			require.Equal(t, i < j, c < 0)
		}
	}
}
