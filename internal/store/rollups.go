package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/baldurfleet/baldur/internal/store/dbsqlc"
)

// Outcomes are call counts.
type Outcomes struct {
	Successes int64
	Failures  int64
	SlowCalls int64
}

// Calls is the number of calls counted.
func (o Outcomes) Calls() int64 { return o.Successes + o.Failures }

// Add returns the sum of o and p.
func (o Outcomes) Add(p Outcomes) Outcomes {
	return Outcomes{o.Successes + p.Successes, o.Failures + p.Failures, o.SlowCalls + p.SlowCalls}
}

// Rollup is a service's call counts in one minute.
type Rollup struct {
	Service string
	// Minute is truncated to the minute (UTC) when stored.
	Minute time.Time
	Outcomes
}

type rollupKey struct {
	service string
	minute  time.Time
}

// AddRollups adds each rollup's counts to its (service, minute) row, creating
// rows as needed, in one statement. Rollups for the same service and minute
// are summed first. Negative counts are refused with ErrInvalidArgument.
func (s *Store) AddRollups(ctx context.Context, rollups []Rollup) error {
	sums := make(map[rollupKey]Outcomes, len(rollups))
	for _, r := range rollups {
		if r.Service == "" || r.Minute.IsZero() {
			return fmt.Errorf("add outcome rollups: %w: service and minute are required", ErrInvalidArgument)
		}
		if r.Successes < 0 || r.Failures < 0 || r.SlowCalls < 0 {
			return fmt.Errorf("add outcome rollups: %w: negative counts for %s at %s", ErrInvalidArgument, r.Service, r.Minute)
		}
		k := rollupKey{r.Service, r.Minute.UTC().Truncate(time.Minute)}
		sums[k] = sums[k].Add(r.Outcomes)
	}
	if len(sums) == 0 {
		return nil
	}
	// A stable order keeps concurrent writers from deadlocking on each
	// other's rows.
	keys := make([]rollupKey, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b rollupKey) int {
		if c := strings.Compare(a.service, b.service); c != 0 {
			return c
		}
		return a.minute.Compare(b.minute)
	})
	p := dbsqlc.AddRollupsParams{
		Services:  make([]string, len(keys)),
		Minutes:   make([]time.Time, len(keys)),
		Successes: make([]int64, len(keys)),
		Failures:  make([]int64, len(keys)),
		SlowCalls: make([]int64, len(keys)),
	}
	for i, k := range keys {
		o := sums[k]
		p.Services[i], p.Minutes[i] = k.service, k.minute
		p.Successes[i], p.Failures[i], p.SlowCalls[i] = o.Successes, o.Failures, o.SlowCalls
	}
	if err := s.q.AddRollups(ctx, p); err != nil {
		return fmt.Errorf("add %d outcome rollups: %w", len(keys), err)
	}
	return nil
}

// SumRollups returns each service's call counts over the minutes at or after
// since (truncated to the minute), for the error budget. Services with no
// rollup in that range are absent.
func (s *Store) SumRollups(ctx context.Context, since time.Time) (map[string]Outcomes, error) {
	rows, err := s.q.SumRollups(ctx, since.UTC().Truncate(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("sum outcome rollups since %s: %w", since, err)
	}
	out := make(map[string]Outcomes, len(rows))
	for _, r := range rows {
		out[r.Service] = Outcomes{Successes: r.Successes, Failures: r.Failures, SlowCalls: r.SlowCalls}
	}
	return out, nil
}

// PruneRollups deletes the rollups of minutes before cutoff and returns how
// many rows it deleted.
func (s *Store) PruneRollups(ctx context.Context, cutoff time.Time) (int64, error) {
	n, err := s.q.DeleteRollupsBefore(ctx, cutoff)
	if err != nil {
		return 0, fmt.Errorf("prune outcome rollups before %s: %w", cutoff, err)
	}
	return n, nil
}
