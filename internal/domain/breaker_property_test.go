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

// brkPropertyConfigs are the configs the property test folds under.
func brkPropertyConfigs() []domain.Config {
	def := domain.DefaultConfig()

	twitchy := domain.DefaultConfig()
	twitchy.MinimumCalls = 2
	twitchy.FailureThreshold = 2
	twitchy.HalfOpenMaxCalls = 1
	twitchy.SuccessThreshold = 1
	twitchy.RecoveryTimeout = domain.Duration(5 * time.Second)
	twitchy.HalfOpenStuckTimeout = domain.Duration(10 * time.Second)
	twitchy.ManualOverrideTTL = domain.Duration(2 * time.Minute)

	fleet := domain.DefaultConfig()
	fleet.MinimumCalls = 5
	fleet.MinFailingNodes = 2
	fleet.SlowCallDuration = domain.Duration(time.Second)
	fleet.SlowCallRateThreshold = 40
	fleet.HalfOpenMaxCalls = 5
	fleet.SuccessThreshold = 3
	fleet.RecoveryTimeout = domain.Duration(10 * time.Second)
	fleet.RecoveryBackoff = 2
	fleet.MaxRecoveryTimeout = domain.Duration(2 * time.Minute)
	fleet.RecoveryJitter = 0.3
	fleet.Window = domain.Duration(20 * time.Second)

	return []domain.Config{def, twitchy, fleet}
}

// brkRandomInput draws one input. seq is the next stream sequence; a report
// sometimes reuses an older one, as a redelivery would.
func brkRandomInput(r *rand.Rand, seq *uint64) domain.Input {
	switch p := r.IntN(100); {
	case p < 45:
		successes := r.Int64N(6)
		failures := r.Int64N(6)
		trailing := failures
		if successes > 0 {
			trailing = r.Int64N(failures + 1)
		}
		rep := domain.Report{
			Node:             fmt.Sprintf("node-%d", r.IntN(4)),
			Successes:        successes,
			Failures:         failures,
			TrailingFailures: trailing,
			SlowCalls:        r.Int64N(min(successes+failures, 3) + 1),
		}
		*seq++
		rep.Seq = *seq
		if r.IntN(10) == 0 && *seq > 3 {
			rep.Seq = *seq - uint64(r.IntN(3)) - 1
		}
		return domain.ReportInput(rep)
	case p < 70:
		return domain.PermitInput(fmt.Sprintf("node-%d", r.IntN(4)))
	case p < 80:
		return domain.TickInput()
	}
	c := domain.Command{
		ID:                 fmt.Sprintf("cmd-%d", r.IntN(50)),
		Action:             domain.Actions[r.IntN(len(domain.Actions))],
		OverrideKillSwitch: r.IntN(2) == 0,
		TriggerReplay:      r.IntN(2) == 0,
	}
	if r.IntN(20) != 0 {
		c.Actor, c.Reason = "oncall-sre", "property test"
	}
	if r.IntN(2) == 0 {
		c.TTL = domain.Duration(time.Duration(1+r.IntN(120)) * time.Minute)
	}
	switch c.Action {
	case domain.ActionHalfOpen:
		c.Trigger = []domain.Trigger{"", domain.TriggerRecoveryTimeout, domain.TriggerStuckHalfOpen}[r.IntN(3)]
	case domain.ActionOverride:
		if r.IntN(2) == 0 {
			ft := 1 + r.IntN(20)
			rate := float64(1 + r.IntN(100))
			c.Override = &domain.ThresholdOverride{FailureThreshold: &ft, FailureRateThreshold: &rate}
		}
	}
	return domain.CommandInput(c)
}

// brkRandomStep is how far the clock moves before an input: mostly seconds,
// sometimes hours, so that recovery, stuck windows and expiries all happen.
func brkRandomStep(r *rand.Rand) time.Duration {
	if r.IntN(50) == 0 {
		return time.Duration(r.IntN(3*3600)) * time.Second
	}
	return time.Duration(r.IntN(15_000)) * time.Millisecond
}

// TestBreakerProperties folds long random input sequences and checks after
// every step: the state is valid and survives a JSON round trip; the
// generation grows by exactly one per transition and transitions chain; the
// receiver is never modified; a non-auto mode never changes the state on an
// outcome report; never more permits are granted in a half-open period than
// half_open_max_calls; Allows agrees with a permit request.
func TestBreakerProperties(t *testing.T) {
	t.Parallel()
	const seeds = 12
	steps := 2500
	if testing.Short() {
		steps = 300
	}
	configs := brkPropertyConfigs()
	for seed := range uint64(seeds) {
		cfg := configs[int(seed)%len(configs)]
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			require.NoError(t, cfg.Validate())
			r := rand.New(rand.NewPCG(seed, 0x6a09e667f3bcc908))
			b := domain.NewBreaker("payments")
			now := brkT0
			var seq uint64
			periodGrants := 0
			seen := map[domain.Trigger]int{}
			for step := range steps {
				now = now.Add(brkRandomStep(r))
				in := brkRandomInput(r, &seq)
				env := domain.Env{Now: now, Config: cfg}
				env.Governance.KillSwitch.Active = r.IntN(10) == 0
				where := fmt.Sprintf("step %d, input %+v, breaker %+v", step, in, b)

				before, err := json.Marshal(b)
				require.NoError(t, err)
				next, res := b.Apply(in, env)
				after, err := json.Marshal(b)
				require.NoError(t, err)
				require.JSONEq(t, string(before), string(after), "receiver modified: %s", where)

				require.NoError(t, next.Validate(), where)
				require.Equal(t, b.Generation+uint64(len(res.Transitions)), next.Generation, where)
				state, mode := b.State, b.Mode
				for i, tr := range res.Transitions {
					require.Equal(t, b.Generation+uint64(i)+1, tr.Generation, where)
					require.Equal(t, state, tr.From, where)
					require.Equal(t, mode, tr.FromMode, where)
					state, mode = tr.To, tr.Mode
					seen[tr.Trigger]++
					if tr.To == domain.StateHalfOpen && (tr.From != domain.StateHalfOpen || tr.Trigger == domain.TriggerStuckHalfOpen) {
						periodGrants = 0 // a new half-open period
					}
				}
				require.Equal(t, state, next.State, where)
				require.Equal(t, mode, next.Mode, where)
				if n := len(res.Transitions); n > 0 {
					last := res.Transitions[n-1]
					require.Equal(t, &domain.LastTransition{From: last.From, To: last.To, Trigger: last.Trigger, At: now},
						next.LastTransition, where)
				}
				if in.Kind == domain.InputReport && b.Mode != domain.ModeAuto {
					require.Equal(t, b.State, next.State, "forced mode changed state: %s", where)
					require.Empty(t, res.Transitions, where)
				}
				permitTaken := in.Kind == domain.InputPermit && res.Granted && b.Mode == domain.ModeAuto && b.State != domain.StateClosed
				if len(res.Transitions) > 0 || res.Applied || permitTaken {
					require.True(t, res.Changed, where)
				}

				if in.Kind == domain.InputPermit && res.Granted && next.State == domain.StateHalfOpen && next.Mode == domain.ModeAuto {
					periodGrants++
				}
				if next.State == domain.StateHalfOpen {
					require.LessOrEqual(t, periodGrants, cfg.HalfOpenMaxCalls, where)
					require.Equal(t, periodGrants, next.HalfOpen.Issued, where)
				}

				var back domain.Breaker
				raw, err := json.Marshal(next)
				require.NoError(t, err)
				require.NoError(t, json.Unmarshal(raw, &back))
				require.Equal(t, next, back, where)

				switch next.Allows(now) {
				case domain.DecisionAllow:
					_, pr := next.Apply(domain.PermitInput("probe"), domain.Env{Now: now, Config: cfg})
					require.True(t, pr.Granted, "Allows says allow, permit refused: %s", where)
				case domain.DecisionDeny:
					_, pr := next.Apply(domain.PermitInput("probe"), domain.Env{Now: now, Config: cfg})
					require.False(t, pr.Granted, "Allows says deny, permit granted: %s", where)
				}
				b = next
			}
			t.Logf("config %d: generation %d after %d steps, triggers %v", seed%uint64(len(configs)), b.Generation, steps, seen)
		})
	}
}
