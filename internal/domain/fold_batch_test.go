package domain_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

// TestFoldEqualsRepeatedApply folds the property test's random input
// sequences twice — with a Fold and with Apply on each input — and checks
// after every step that both give the same breaker and result, that the
// breaker the Fold started from is never modified, and that a breaker taken
// out of the Fold half-way is not modified by what the Fold does next.
func TestFoldEqualsRepeatedApply(t *testing.T) {
	t.Parallel()
	steps := 2000
	if testing.Short() {
		steps = 300
	}
	configs := brkPropertyConfigs()
	for seed := range uint64(9) {
		cfg := configs[int(seed)%len(configs)]
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, 0xbb67ae8584caa73b))
			start := domain.NewBreaker("payments")
			// A warm start: the Fold must copy a window it did not build.
			env := domain.Env{Now: brkT0, Config: cfg}
			for i := range 12 {
				env.Now = brkT0.Add(time.Duration(i) * 3 * time.Second)
				start, _ = start.Apply(domain.ReportInput(domain.Report{Node: fmt.Sprintf("node-%d", i%3), Successes: 3, Failures: 1}), env)
			}
			startJSON, err := json.Marshal(start)
			require.NoError(t, err)

			fold := domain.NewFold(start)
			want := start
			now := env.Now
			var (
				seq        uint64 = 100
				taken      domain.Breaker
				takenJSON  []byte
				takenValid bool
			)
			for step := range steps {
				now = now.Add(brkRandomStep(r))
				in := brkRandomInput(r, &seq)
				env := domain.Env{Now: now, Config: cfg}
				env.Governance.KillSwitch.Active = r.IntN(10) == 0
				where := fmt.Sprintf("step %d, input %+v", step, in)

				var wantRes domain.Result
				want, wantRes = want.Apply(in, env)
				gotRes := fold.Apply(in, env)
				require.Equal(t, wantRes, gotRes, where)

				if r.IntN(50) == 0 {
					taken = fold.Breaker()
					require.Equal(t, want, taken, where)
					takenJSON, err = json.Marshal(taken)
					require.NoError(t, err)
					takenValid = true
				}
				if takenValid {
					now, err := json.Marshal(taken)
					require.NoError(t, err)
					require.JSONEq(t, string(takenJSON), string(now), "breaker taken from the Fold modified: %s", where)
				}
			}
			require.Equal(t, want, fold.Breaker())
			after, err := json.Marshal(start)
			require.NoError(t, err)
			require.JSONEq(t, string(startJSON), string(after), "the Fold's starting breaker was modified")
		})
	}
}

// TestApplyAllEqualsRepeatedApply checks ApplyAll against Apply in a loop for
// batches under one Env, as a breaker-worker folds them.
func TestApplyAllEqualsRepeatedApply(t *testing.T) {
	t.Parallel()
	configs := brkPropertyConfigs()
	for seed := range uint64(30) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, 0x3c6ef372fe94f82b))
			cfg := configs[int(seed)%len(configs)]
			b := domain.NewBreaker("payments")
			now := brkT0
			var seq uint64
			for range 40 {
				now = now.Add(brkRandomStep(r))
				env := domain.Env{Now: now, Config: cfg}
				inputs := make([]domain.Input, r.IntN(60))
				for i := range inputs {
					inputs[i] = brkRandomInput(r, &seq)
				}
				before, err := json.Marshal(b)
				require.NoError(t, err)

				got, gotRes := b.ApplyAll(inputs, env)

				want := b
				var (
					trans                                         []domain.Transition
					changed, granted, applied, ignored, overrides bool
					errs                                          int
				)
				for _, in := range inputs {
					var res domain.Result
					want, res = want.Apply(in, env)
					trans = append(trans, res.Transitions...)
					changed = changed || res.Changed
					granted = granted || res.Granted
					applied = applied || res.Applied
					ignored = ignored || res.Ignored
					overrides = overrides || res.KillSwitchOverridden
					if res.Err != nil {
						errs++
					}
				}
				require.Equal(t, want, got)
				require.Equal(t, trans, gotRes.Transitions)
				require.Equal(t, changed, gotRes.Changed)
				require.Equal(t, granted, gotRes.Granted)
				require.Equal(t, applied, gotRes.Applied)
				require.Equal(t, ignored, gotRes.Ignored)
				require.Equal(t, overrides, gotRes.KillSwitchOverridden)
				require.Equal(t, errs > 0, gotRes.Err != nil)

				after, err := json.Marshal(b)
				require.NoError(t, err)
				require.JSONEq(t, string(before), string(after), "ApplyAll modified its receiver")
				b = got
			}
		})
	}
}

// BenchmarkFoldReports folds batches of 1000 one-call reports into a warm
// breaker: with a Fold (one window copy per batch) and with Apply per report.
func BenchmarkFoldReports(b *testing.B) {
	env := domain.Env{Now: brkT0, Config: domain.DefaultConfig()}
	br := domain.NewBreaker("payments")
	for i := range 10 {
		env.Now = brkT0.Add(time.Duration(i) * 6 * time.Second)
		for n := range 4 {
			br, _ = br.Apply(domain.ReportInput(domain.Report{Node: string(rune('a' + n)), Successes: 100, Failures: 1}), env)
		}
	}
	const batch = 1000
	inputs := make([]domain.Input, batch)
	for i := range inputs {
		inputs[i] = domain.ReportInput(domain.Report{Node: "a", Successes: 1})
	}
	b.Run("fold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f := domain.NewFold(br)
			for _, in := range inputs {
				f.Apply(in, env)
			}
			_ = f.Breaker()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/report")
	})
	b.Run("apply", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			x := br
			for _, in := range inputs {
				x, _ = x.Apply(in, env)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/report")
	})
}
