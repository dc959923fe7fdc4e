package domain_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

func TestBatchSizing_DefaultsAreTheSeeds(t *testing.T) {
	t.Parallel()
	p := domain.DefaultBatchSizing()
	require.NoError(t, p.Validate())
	require.Equal(t, domain.BatchSizing{Start: 50, Min: 10, Max: 100, ShrinkFactor: 0.8,
		ShrinkAtFailureRate: 0.2, GrowStep: 5, GrowAfter: 3}, p)
}

func TestBatchSizing_Validate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*domain.BatchSizing)
		field  string
	}{
		{"min zero", func(p *domain.BatchSizing) { p.Min = 0 }, "min 0"},
		{"max below min", func(p *domain.BatchSizing) { p.Max = 5 }, "max 5"},
		{"start below min", func(p *domain.BatchSizing) { p.Start = 9 }, "start 9"},
		{"start above max", func(p *domain.BatchSizing) { p.Start = 101 }, "start 101"},
		{"shrink factor one", func(p *domain.BatchSizing) { p.ShrinkFactor = 1 }, "shrink_factor"},
		{"shrink factor zero", func(p *domain.BatchSizing) { p.ShrinkFactor = 0 }, "shrink_factor"},
		{"shrink rate zero", func(p *domain.BatchSizing) { p.ShrinkAtFailureRate = 0 }, "shrink_at_failure_rate"},
		{"shrink rate above one", func(p *domain.BatchSizing) { p.ShrinkAtFailureRate = 1.5 }, "shrink_at_failure_rate"},
		{"negative grow step", func(p *domain.BatchSizing) { p.GrowStep = -1 }, "grow_step"},
		{"grow after zero", func(p *domain.BatchSizing) { p.GrowAfter = 0 }, "grow_after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := domain.DefaultBatchSizing()
			tt.modify(&p)
			err := p.Validate()
			require.ErrorIs(t, err, domain.ErrInvalidBatchSizing)
			require.ErrorContains(t, err, tt.field)
			_, err = domain.NewBatchSizer(p)
			require.ErrorIs(t, err, domain.ErrInvalidBatchSizing)
		})
	}
}

// batch is one replay batch's result: attempted entries and failures.
type batch struct{ processed, failed int }

func TestBatchSizer_SeedRules(t *testing.T) {
	t.Parallel()
	perfect := batch{50, 0}
	bad := batch{10, 2} // exactly 20 %
	tests := []struct {
		name    string
		batches []batch
		sizes   []int // size after each batch
	}{
		{"failure rate of 20 % shrinks by a fifth, rounded down",
			[]batch{bad, bad, bad}, []int{40, 32, 25}},
		{"shrinking stops at min",
			[]batch{bad, bad, bad, bad, bad, bad, bad, bad}, []int{40, 32, 25, 20, 16, 12, 10, 10}},
		{"failure rate below 20 % keeps the size",
			[]batch{{100, 19}, {10, 1}}, []int{50, 50}},
		{"three perfect batches grow by five",
			[]batch{perfect, perfect, perfect, perfect, perfect, perfect}, []int{50, 50, 55, 55, 55, 60}},
		{"an imperfect batch resets the perfect streak",
			[]batch{perfect, perfect, {50, 1}, perfect, perfect, perfect}, []int{50, 50, 50, 50, 50, 55}},
		{"a shrinking batch resets the perfect streak",
			[]batch{perfect, perfect, bad, perfect, perfect, perfect}, []int{50, 50, 40, 40, 40, 45}},
		{"an empty batch changes nothing, streak included",
			[]batch{perfect, perfect, {0, 0}, perfect}, []int{50, 50, 50, 55}},
		{"failures above processed are clamped",
			[]batch{{5, 9}}, []int{40}},
		{"negative failures count as none",
			[]batch{{5, -1}, {5, -1}, {5, -1}}, []int{50, 50, 55}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := domain.NewBatchSizer(domain.DefaultBatchSizing())
			require.NoError(t, err)
			require.Equal(t, 50, s.Size())
			for i, b := range tt.batches {
				s = s.Next(b.processed, b.failed)
				require.Equal(t, tt.sizes[i], s.Size(), "after batch %d %+v", i+1, b)
			}
		})
	}
}

func TestBatchSizer_GrowthStopsAtMax(t *testing.T) {
	t.Parallel()
	var s domain.BatchSizer
	for range 60 {
		s = s.Next(100, 0)
	}
	require.Equal(t, 100, s.Size())
	require.Less(t, s.PerfectStreak(), 3)
}

func TestBatchSizer_ZeroValueUsesDefaults(t *testing.T) {
	t.Parallel()
	var zero domain.BatchSizer
	require.Equal(t, 50, zero.Size())
	require.Equal(t, domain.DefaultBatchSizing(), zero.Params())
	require.Equal(t, 40, zero.Next(10, 5).Size())
	require.Equal(t, 50, zero.Size(), "Next returns a new value; the receiver is unchanged")
}

func TestBatchSizer_PropertySizeStaysWithinBounds(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		p := domain.BatchSizing{
			Min:                 1 + rng.IntN(50),
			ShrinkFactor:        0.01 + rng.Float64()*0.98,
			ShrinkAtFailureRate: 0.01 + rng.Float64()*0.99,
			GrowStep:            rng.IntN(40),
			GrowAfter:           1 + rng.IntN(5),
		}
		p.Max = p.Min + rng.IntN(200)
		p.Start = p.Min + rng.IntN(p.Max-p.Min+1)
		s, err := domain.NewBatchSizer(p)
		require.NoError(t, err, "%+v", p)
		for range 200 {
			processed := rng.IntN(s.Size()+3) - 1
			failed := rng.IntN(processed+3) - 1
			if rng.IntN(3) == 0 {
				failed = 0
			}
			s = s.Next(processed, failed)
			require.GreaterOrEqual(t, s.Size(), p.Min, "%+v", p)
			require.LessOrEqual(t, s.Size(), p.Max, "%+v", p)
			require.GreaterOrEqual(t, s.PerfectStreak(), 0)
			require.Less(t, s.PerfectStreak(), p.GrowAfter)
		}
	}
}

func ExampleBatchSizer() {
	var sizer domain.BatchSizer // the seed's defaults: start 50, min 10, max 100
	fmt.Println(sizer.Size())

	sizer = sizer.Next(50, 12) // 24 % failed: ×0.8
	fmt.Println(sizer.Size())

	for range 3 { // three perfect batches: +5
		sizer = sizer.Next(sizer.Size(), 0)
	}
	fmt.Println(sizer.Size())
	// Output:
	// 50
	// 40
	// 45
}
