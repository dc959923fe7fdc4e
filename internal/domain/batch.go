package domain

import (
	"errors"
	"fmt"
	"math"
)

// Batch-sizing defaults (seed: replay_batch in adaptive mode).
const (
	DefaultBatchStart           = 50
	DefaultBatchMin             = 10
	DefaultBatchMax             = 100
	DefaultBatchShrinkFactor    = 0.8
	DefaultBatchShrinkAtFailure = 0.2
	DefaultBatchGrowStep        = 5
	DefaultBatchGrowAfter       = 3
)

// BatchSizing holds the parameters of the adaptive replay batch size.
type BatchSizing struct {
	// Start is the size of the first batch.
	Start int `json:"start"`
	// Min and Max bound the size.
	Min int `json:"min"`
	Max int `json:"max"`
	// ShrinkFactor multiplies the size (rounded down) after a batch whose
	// failure rate reached ShrinkAtFailureRate.
	ShrinkFactor        float64 `json:"shrink_factor"`
	ShrinkAtFailureRate float64 `json:"shrink_at_failure_rate"`
	// GrowStep is added to the size after GrowAfter consecutive perfect
	// batches (no failure).
	GrowStep  int `json:"grow_step"`
	GrowAfter int `json:"grow_after"`
}

// DefaultBatchSizing returns the seed's parameters: start 50, min 10, max 100,
// ×0.8 when a batch fails ≥ 20 %, +5 after 3 perfect batches.
func DefaultBatchSizing() BatchSizing {
	return BatchSizing{
		Start:               DefaultBatchStart,
		Min:                 DefaultBatchMin,
		Max:                 DefaultBatchMax,
		ShrinkFactor:        DefaultBatchShrinkFactor,
		ShrinkAtFailureRate: DefaultBatchShrinkAtFailure,
		GrowStep:            DefaultBatchGrowStep,
		GrowAfter:           DefaultBatchGrowAfter,
	}
}

// Validate returns an error wrapping ErrInvalidBatchSizing that names every
// parameter out of range, or nil.
func (p BatchSizing) Validate() error {
	var errs []error
	if p.Min < 1 {
		errs = append(errs, fmt.Errorf("min %d must be at least 1", p.Min))
	}
	if p.Max < p.Min {
		errs = append(errs, fmt.Errorf("max %d must not be below min %d", p.Max, p.Min))
	}
	if p.Start < p.Min || p.Start > p.Max {
		errs = append(errs, fmt.Errorf("start %d must be within [min %d, max %d]", p.Start, p.Min, p.Max))
	}
	if !(p.ShrinkFactor > 0 && p.ShrinkFactor < 1) {
		errs = append(errs, fmt.Errorf("shrink_factor %v must be in (0, 1)", p.ShrinkFactor))
	}
	if !(p.ShrinkAtFailureRate > 0 && p.ShrinkAtFailureRate <= 1) {
		errs = append(errs, fmt.Errorf("shrink_at_failure_rate %v must be in (0, 1]", p.ShrinkAtFailureRate))
	}
	if p.GrowStep < 0 {
		errs = append(errs, fmt.Errorf("grow_step %d must not be negative", p.GrowStep))
	}
	if p.GrowAfter < 1 {
		errs = append(errs, fmt.Errorf("grow_after %d must be at least 1", p.GrowAfter))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidBatchSizing, errors.Join(errs...))
}

// BatchSizer is the adaptive replay batch size: a value that Next replaces
// after every batch. The zero BatchSizer behaves as one made by
// NewBatchSizer(DefaultBatchSizing()).
type BatchSizer struct {
	p      BatchSizing // zero means DefaultBatchSizing
	size   int
	streak int
}

// NewBatchSizer returns a sizer at p.Start, or an error wrapping
// ErrInvalidBatchSizing.
func NewBatchSizer(p BatchSizing) (BatchSizer, error) {
	if err := p.Validate(); err != nil {
		return BatchSizer{}, err
	}
	return BatchSizer{p: p, size: p.Start}, nil
}

// Params returns the sizing parameters in use.
func (s BatchSizer) Params() BatchSizing {
	if s.p == (BatchSizing{}) {
		return DefaultBatchSizing()
	}
	return s.p
}

// Size is how many entries the next batch should take.
func (s BatchSizer) Size() int {
	if s.size == 0 {
		return s.Params().Start
	}
	return s.size
}

// PerfectStreak is the number of consecutive perfect batches since the size
// last grew or shrank.
func (s BatchSizer) PerfectStreak() int { return s.streak }

// Next returns the sizer after a batch in which processed entries were
// attempted and failed of them failed:
//
//   - failure rate failed/processed ≥ ShrinkAtFailureRate: size × ShrinkFactor,
//     rounded down, not below Min; the perfect streak resets;
//   - no failure: the streak grows, and at GrowAfter the size grows by
//     GrowStep (not above Max) and the streak resets;
//   - some failures below the rate: the streak resets, the size stays.
//
// An empty batch (processed ≤ 0) changes nothing. failed is clamped to
// [0, processed]. The size always stays within [Min, Max].
func (s BatchSizer) Next(processed, failed int) BatchSizer {
	p := s.Params()
	s.p = p
	s.size = s.Size()
	if processed <= 0 {
		return s
	}
	failed = min(max(failed, 0), processed)
	switch {
	case float64(failed)/float64(processed) >= p.ShrinkAtFailureRate:
		s.size = int(math.Floor(float64(s.size) * p.ShrinkFactor))
		s.streak = 0
	case failed == 0:
		s.streak++
		if s.streak >= p.GrowAfter {
			s.size += p.GrowStep
			s.streak = 0
		}
	default:
		s.streak = 0
	}
	s.size = min(max(s.size, p.Min), p.Max)
	return s
}
