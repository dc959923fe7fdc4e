package domain_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

func init() {
	// Golden files are rewritten with `go test -update`. The flag is defined
	// only if no other test file of the package defined it already.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the testdata/*.golden files")
	}
}

func brkUpdateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// brkT0 is the start of every breaker scenario.
var brkT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// brkHarness drives one breaker through a scenario, checking after every fold
// that the generation grew by exactly the number of transitions.
type brkHarness struct {
	t           *testing.T
	b           domain.Breaker
	env         domain.Env
	seq         uint64
	transitions []domain.Transition
}

func newBrk(t *testing.T, cfg domain.Config) *brkHarness {
	t.Helper()
	require.NoError(t, cfg.Validate())
	return &brkHarness{t: t, b: domain.NewBreaker("payments"), env: domain.Env{Now: brkT0, Config: cfg}}
}

// at sets the clock to brkT0 + d.
func (h *brkHarness) at(d time.Duration) *brkHarness {
	h.env.Now = brkT0.Add(d)
	return h
}

func (h *brkHarness) apply(in domain.Input) domain.Result {
	h.t.Helper()
	next, res := h.b.Apply(in, h.env)
	require.Equal(h.t, h.b.Generation+uint64(len(res.Transitions)), next.Generation, "one generation per transition")
	require.NoError(h.t, next.Validate())
	h.b = next
	h.transitions = append(h.transitions, res.Transitions...)
	return res
}

// report folds an outcome report from node with the next stream sequence.
func (h *brkHarness) report(node string, successes, failures, trailing int64) domain.Result {
	h.t.Helper()
	h.seq++
	return h.apply(domain.ReportInput(domain.Report{Node: node, Seq: h.seq, At: h.env.Now,
		Successes: successes, Failures: failures, TrailingFailures: trailing}))
}

// fail folds n single-failure reports from node.
func (h *brkHarness) fail(node string, n int) {
	h.t.Helper()
	for range n {
		h.report(node, 0, 1, 1)
	}
}

func (h *brkHarness) cmd(c domain.Command) domain.Result {
	h.t.Helper()
	return h.apply(domain.CommandInput(c))
}

func (h *brkHarness) permit() domain.Result {
	h.t.Helper()
	return h.apply(domain.PermitInput("node-a"))
}

func (h *brkHarness) tick() domain.Result {
	h.t.Helper()
	return h.apply(domain.TickInput())
}

// last is the most recent transition.
func (h *brkHarness) last() domain.Transition {
	h.t.Helper()
	require.NotEmpty(h.t, h.transitions)
	return h.transitions[len(h.transitions)-1]
}

// trip opens the breaker with ten failures at the current time.
func (h *brkHarness) trip() {
	h.t.Helper()
	h.fail("node-a", 10)
	require.Equal(h.t, domain.StateOpen, h.b.State)
}

func manual(action domain.Action) domain.Command {
	return domain.Command{Action: action, Actor: "oncall-sre", Reason: "vendor maintenance"}
}

func TestBreakerTrips(t *testing.T) {
	t.Parallel()
	slow := domain.DefaultConfig()
	slow.SlowCallDuration = domain.Duration(2 * time.Second)
	slow.SlowCallRateThreshold = 50
	slow.FailureRateThreshold = 100
	twoNodes := domain.DefaultConfig()
	twoNodes.MinFailingNodes = 2
	noRate := domain.DefaultConfig()
	noRate.FailureRateThreshold = 100

	tests := []struct {
		name     string
		cfg      domain.Config
		reports  []domain.Report
		wantOpen bool
	}{
		{
			name:     "failure rate reaches the threshold",
			cfg:      domain.DefaultConfig(),
			reports:  []domain.Report{{Node: "a", Successes: 5, Failures: 5, TrailingFailures: 0}},
			wantOpen: true,
		},
		{
			name:    "failure rate just below the threshold",
			cfg:     domain.DefaultConfig(),
			reports: []domain.Report{{Node: "a", Successes: 6, Failures: 4, TrailingFailures: 0}},
		},
		{
			name: "consecutive failures reach failure_threshold",
			cfg:  noRate,
			reports: []domain.Report{
				{Node: "a", Successes: 8},
				{Node: "a", Failures: 2, TrailingFailures: 2},
				{Node: "b", Failures: 3, TrailingFailures: 3},
			},
			wantOpen: true,
		},
		{
			name: "a success resets consecutive failures through trailing_failures",
			cfg:  noRate,
			reports: []domain.Report{
				{Node: "a", Successes: 8},
				{Node: "a", Failures: 4, TrailingFailures: 4},
				{Node: "a", Successes: 1, Failures: 2, TrailingFailures: 1},
				{Node: "a", Failures: 3, TrailingFailures: 3},
			},
		},
		{
			name:    "minimum_calls blocks a trip",
			cfg:     domain.DefaultConfig(),
			reports: []domain.Report{{Node: "a", Failures: 9, TrailingFailures: 9}},
		},
		{
			name: "minimum_calls reached trips",
			cfg:  domain.DefaultConfig(),
			reports: []domain.Report{
				{Node: "a", Failures: 9, TrailingFailures: 9},
				{Node: "a", Failures: 1, TrailingFailures: 1},
			},
			wantOpen: true,
		},
		{
			name:    "min_failing_nodes blocks a trip by one bad node",
			cfg:     twoNodes,
			reports: []domain.Report{{Node: "a", Failures: 20, TrailingFailures: 20}},
		},
		{
			name: "min_failing_nodes reached trips",
			cfg:  twoNodes,
			reports: []domain.Report{
				{Node: "a", Failures: 20, TrailingFailures: 20},
				{Node: "b", Failures: 1, TrailingFailures: 1},
			},
			wantOpen: true,
		},
		{
			name: "a node reporting only successes does not count as failing",
			cfg:  twoNodes,
			reports: []domain.Report{
				{Node: "a", Failures: 20, TrailingFailures: 20},
				{Node: "b", Successes: 5},
			},
		},
		{
			name:     "slow-call rate trips when enabled",
			cfg:      slow,
			reports:  []domain.Report{{Node: "a", Successes: 10, SlowCalls: 5}},
			wantOpen: true,
		},
		{
			name:    "slow calls never trip when the rule is off",
			cfg:     domain.DefaultConfig(),
			reports: []domain.Report{{Node: "a", Successes: 10, SlowCalls: 10}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newBrk(t, tt.cfg)
			for _, r := range tt.reports {
				h.seq++
				r.Seq = h.seq
				h.apply(domain.ReportInput(r))
			}
			if !tt.wantOpen {
				require.Equal(t, domain.StateClosed, h.b.State)
				require.Empty(t, h.transitions)
				return
			}
			require.Equal(t, domain.StateOpen, h.b.State)
			require.Len(t, h.transitions, 1)
			tr := h.last()
			require.Equal(t, domain.TriggerAuto, tr.Trigger)
			require.Equal(t, domain.TransitionOpened, tr.Kind())
			require.Equal(t, domain.StateClosed, tr.From)
			require.Equal(t, uint64(1), tr.Generation)
			require.Equal(t, brkT0, h.b.OpenedAt)
			require.Equal(t, brkT0.Add(time.Minute), h.b.RecoveryAt)
			require.Equal(t, &domain.LastTransition{From: domain.StateClosed, To: domain.StateOpen,
				Trigger: domain.TriggerAuto, At: brkT0}, h.b.LastTransition)
		})
	}
}

func TestBreakerConsecutiveFailures(t *testing.T) {
	t.Parallel()
	h := newBrk(t, domain.DefaultConfig())
	h.report("a", 0, 3, 3)
	require.Equal(t, int64(3), h.b.ConsecutiveFailures)
	h.report("b", 2, 3, 1)
	require.Equal(t, int64(1), h.b.ConsecutiveFailures, "a success resets to the trailing failures")
	h.report("a", 0, 2, 2)
	require.Equal(t, int64(3), h.b.ConsecutiveFailures, "failures without success accumulate")
	h.report("a", 1, 0, 0)
	require.Equal(t, int64(0), h.b.ConsecutiveFailures)
}

func TestBreakerWindowAges(t *testing.T) {
	t.Parallel()
	h := newBrk(t, domain.DefaultConfig())
	h.report("a", 0, 9, 9)
	h.at(30*time.Second).report("a", 15, 0, 0)
	require.Equal(t, int64(24), h.b.Window.Calls())
	require.Len(t, h.b.Window.Buckets, 2)

	// At 60s the first bucket (12:00:00–12:00:06) has left the window.
	res := h.at(60 * time.Second).tick()
	require.True(t, res.Changed)
	require.Equal(t, domain.WindowStats{Successes: 15}, h.b.Window.WindowStats)

	res = h.at(10 * time.Minute).tick()
	require.True(t, res.Changed)
	require.Equal(t, domain.Window{}, h.b.Window)
	res = h.tick()
	require.False(t, res.Changed, "nothing left to age")

	// Failures that aged out no longer count toward minimum_calls, though the
	// consecutive rule still remembers them.
	h = newBrk(t, domain.DefaultConfig())
	h.fail("a", 9)
	h.at(time.Minute).fail("a", 1)
	require.Equal(t, int64(10), h.b.ConsecutiveFailures)
	require.Equal(t, int64(1), h.b.Window.Calls())
	require.Equal(t, domain.StateClosed, h.b.State)
	h.fail("a", 8)
	require.Equal(t, domain.StateClosed, h.b.State)
	h.fail("a", 1)
	require.Equal(t, domain.StateOpen, h.b.State)
}

func TestBreakerWindowBounds(t *testing.T) {
	t.Parallel()
	cfg := domain.DefaultConfig()
	cfg.MinimumCalls = domain.MaxCountSetting
	h := newBrk(t, cfg)
	for i := range 70 {
		h.at(time.Duration(i) * time.Second)
		for n := range domain.MaxBucketNodes + 5 {
			h.report("node-"+string(rune('A'+n)), 1, 1, 0)
		}
	}
	require.LessOrEqual(t, len(h.b.Window.Buckets), domain.WindowBuckets)
	for _, b := range h.b.Window.Buckets {
		require.LessOrEqual(t, len(b.Nodes), domain.MaxBucketNodes)
	}
	require.Equal(t, domain.MaxBucketNodes, h.b.Window.FailingNodes, "the same nodes in every bucket are counted once")
	require.Equal(t, 50.0, h.b.Window.FailureRate)
	// At 12:01:09 the window holds the buckets from 12:00:12 on: 58 seconds of
	// reports. Calls from nodes beyond the cap are still counted.
	require.Equal(t, int64(58*(domain.MaxBucketNodes+5)), h.b.Window.Failures)
}

func TestBreakerHalfOpenPermits(t *testing.T) {
	t.Parallel()
	h := newBrk(t, domain.DefaultConfig())
	h.trip()
	require.Equal(t, domain.DecisionDeny, h.b.Allows(h.env.Now))

	res := h.at(59 * time.Second).permit()
	require.False(t, res.Granted, "open admits nothing before recovery_at")
	require.False(t, res.Changed)

	require.Equal(t, domain.DecisionAskPermit, h.b.Allows(brkT0.Add(time.Minute)))
	res = h.at(time.Minute).permit()
	require.True(t, res.Granted)
	require.Equal(t, domain.StateHalfOpen, h.b.State)
	tr := h.last()
	require.Equal(t, domain.TriggerRecoveryTimeout, tr.Trigger)
	require.Equal(t, domain.TransitionHalfOpened, tr.Kind())
	require.Equal(t, domain.HalfOpen{Permits: 3, Issued: 1, StartedAt: brkT0.Add(time.Minute)}, h.b.HalfOpen)

	gen := h.b.Generation
	require.True(t, h.permit().Granted)
	require.True(t, h.permit().Granted)
	res = h.permit()
	require.False(t, res.Granted, "half_open_max_calls reached")
	require.Equal(t, gen, h.b.Generation, "granting a permit is not a transition")
	require.Equal(t, 3, h.b.HalfOpen.Issued)

	// Not stuck yet at 59 s into the period.
	require.False(t, h.at(time.Minute+59*time.Second).permit().Granted)

	res = h.at(2 * time.Minute).permit()
	require.True(t, res.Granted, "a full window older than the stuck timeout resets to one slot")
	tr = h.last()
	require.Equal(t, domain.TriggerStuckHalfOpen, tr.Trigger)
	require.Equal(t, domain.TransitionModeChanged, tr.Kind())
	require.Equal(t, domain.HalfOpen{Permits: 3, Issued: 1, StartedAt: brkT0.Add(2 * time.Minute)}, h.b.HalfOpen)
}

func TestBreakerHalfOpenCloses(t *testing.T) {
	t.Parallel()
	h := newBrk(t, domain.DefaultConfig())
	h.trip()
	h.at(time.Minute).permit()
	h.report("a", 1, 0, 0)
	require.Equal(t, domain.StateHalfOpen, h.b.State)
	h.report("a", 1, 0, 0)
	require.Equal(t, domain.StateClosed, h.b.State)
	tr := h.last()
	require.Equal(t, domain.TriggerAuto, tr.Trigger)
	require.True(t, tr.TriggerReplay, "closing from half-open replays the backlog")
	require.Equal(t, domain.TransitionClosed, tr.Kind())
	require.Equal(t, uint64(3), tr.Generation)
	require.Equal(t, domain.Window{}, h.b.Window, "a closed breaker starts with an empty window")
	require.Zero(t, h.b.ConsecutiveFailures)
	require.Zero(t, h.b.Reopens)
	require.Equal(t, domain.HalfOpen{}, h.b.HalfOpen)
	require.True(t, h.b.RecoveryAt.IsZero())
	require.Equal(t, domain.DecisionAllow, h.b.Allows(h.env.Now))
}

func TestBreakerHalfOpenFailureReopensWithBackoff(t *testing.T) {
	t.Parallel()
	cfg := domain.DefaultConfig()
	cfg.RecoveryBackoff = 2
	cfg.MaxRecoveryTimeout = domain.Duration(3 * time.Minute)
	h := newBrk(t, cfg)
	h.trip()

	now := time.Minute
	for i, want := range []time.Duration{2 * time.Minute, 3 * time.Minute, 3 * time.Minute} {
		h.at(now).permit()
		require.Equal(t, domain.StateHalfOpen, h.b.State)
		h.report("a", 1, 1, 1) // any failure re-opens, successes or not
		require.Equal(t, domain.StateOpen, h.b.State)
		tr := h.last()
		require.Equal(t, domain.TriggerHalfOpenFailure, tr.Trigger)
		require.Equal(t, domain.TransitionOpened, tr.Kind())
		require.Equal(t, i+1, h.b.Reopens)
		require.Equal(t, brkT0.Add(now+want), h.b.RecoveryAt, "re-open %d", i+1)
		now += want
	}
}

func TestBreakerRecoveryJitterIsDeterministic(t *testing.T) {
	t.Parallel()
	cfg := domain.DefaultConfig()
	cfg.RecoveryBackoff = 2
	cfg.RecoveryJitter = 0.5
	run := func(service string) []time.Duration {
		h := newBrk(t, cfg)
		h.b.Service = service
		h.trip()
		require.Equal(t, brkT0.Add(time.Minute), h.b.RecoveryAt, "no jitter on the first open")
		var delays []time.Duration
		now := time.Minute
		for i := range 4 {
			h.at(now).permit()
			h.report("a", 0, 1, 1)
			d := h.b.RecoveryAt.Sub(h.b.OpenedAt)
			full := min(time.Minute<<(i+1), 10*time.Minute)
			require.LessOrEqual(t, d, full, "jitter only shortens")
			require.GreaterOrEqual(t, d, full/2, "by at most recovery_jitter")
			delays = append(delays, d)
			now += d
		}
		return delays
	}
	a := run("payments")
	require.Equal(t, a, run("payments"), "same service and generations, same delays")
	require.NotEqual(t, a, run("shipping"), "another service gets other delays")
}

func TestBreakerManualOpen(t *testing.T) {
	t.Parallel()
	h := newBrk(t, domain.DefaultConfig())
	c := manual(domain.ActionOpen)
	c.ID = "cmd-1"
	res := h.cmd(c)
	require.True(t, res.Applied)
	require.NoError(t, res.Err)
	require.Equal(t, domain.StateOpen, h.b.State)
	require.Equal(t, domain.ModeForcedOpen, h.b.Mode)
	require.Equal(t, &domain.Manual{Actor: "oncall-sre", Reason: "vendor maintenance",
		ExpiresAt: brkT0.Add(90 * time.Minute)}, h.b.Manual)
	require.Equal(t, "cmd-1", h.b.LastCommandID)
	tr := h.last()
	require.Equal(t, domain.TriggerManual, tr.Trigger)
	require.Equal(t, "oncall-sre", tr.Actor)
	require.Equal(t, "vendor maintenance", tr.Reason)
	require.Equal(t, domain.ModeAuto, tr.FromMode)
	require.Equal(t, domain.ModeForcedOpen, tr.Mode)

	// Outcomes are counted but do not change the state; nothing is admitted.
	h.at(time.Hour).report("a", 50, 0, 0)
	require.Equal(t, domain.StateOpen, h.b.State)
	require.Equal(t, int64(50), h.b.Window.Successes)
	require.Equal(t, domain.DecisionDeny, h.b.Allows(h.env.Now))
	require.False(t, h.permit().Granted)
	res = h.cmd(domain.Command{Action: domain.ActionHalfOpen, Trigger: domain.TriggerRecoveryTimeout})
	require.ErrorIs(t, res.Err, domain.ErrModeNotAuto)

	// The same command again is a duplicate.
	res = h.cmd(c)
	require.True(t, res.Ignored)
	require.Len(t, h.transitions, 1)

	require.Empty(t, h.at(90*time.Minute-time.Second).tick().Transitions)
	res = h.at(90 * time.Minute).tick()
	require.Len(t, res.Transitions, 1)
	tr = res.Transitions[0]
	require.Equal(t, domain.TriggerManualExpired, tr.Trigger)
	require.Equal(t, domain.TransitionHalfOpened, tr.Kind())
	require.Equal(t, domain.StateHalfOpen, h.b.State)
	require.Equal(t, domain.ModeAuto, h.b.Mode)
	require.Nil(t, h.b.Manual)
	require.Equal(t, domain.HalfOpen{Permits: 3, StartedAt: brkT0.Add(90 * time.Minute)}, h.b.HalfOpen)
}

func TestBreakerManualClose(t *testing.T) {
	t.Parallel()
	h := newBrk(t, domain.DefaultConfig())
	h.trip()
	c := manual(domain.ActionClose)
	c.TriggerReplay = true
	c.TTL = domain.Duration(10 * time.Minute)
	res := h.cmd(c)
	require.True(t, res.Applied)
	tr := h.last()
	require.Equal(t, domain.TransitionClosed, tr.Kind())
	require.Equal(t, domain.TriggerManual, tr.Trigger)
	require.True(t, tr.TriggerReplay)
	require.Equal(t, domain.ModeForcedClosed, h.b.Mode)
	require.Equal(t, brkT0.Add(10*time.Minute), h.b.Manual.ExpiresAt)

	h.fail("a", 30)
	require.Equal(t, domain.StateClosed, h.b.State, "a forced breaker never trips")
	require.Equal(t, domain.DecisionAllow, h.b.Allows(h.env.Now))
	require.True(t, h.permit().Granted)

	// A manual close of a closed breaker is still one mode_changed transition.
	res = h.cmd(manual(domain.ActionClose))
	require.True(t, res.Applied)
	require.Equal(t, domain.TransitionModeChanged, h.last().Kind())
	require.False(t, h.last().TriggerReplay)

	// Expiry of a forced close also goes to HALF_OPEN.
	h.at(90 * time.Minute).tick()
	require.Equal(t, domain.StateHalfOpen, h.b.State)
	require.Equal(t, domain.TriggerManualExpired, h.last().Trigger)
}

func TestBreakerModes(t *testing.T) {
	t.Parallel()
	t.Run("auto returns to automatic mode keeping the state", func(t *testing.T) {
		t.Parallel()
		h := newBrk(t, domain.DefaultConfig())
		h.cmd(manual(domain.ActionOpen))
		gen := h.b.Generation
		res := h.cmd(manual(domain.ActionAuto))
		require.True(t, res.Applied)
		require.Equal(t, domain.StateOpen, h.b.State)
		require.Equal(t, domain.ModeAuto, h.b.Mode)
		require.Nil(t, h.b.Manual)
		require.Equal(t, gen+1, h.b.Generation)
		require.Equal(t, domain.TransitionModeChanged, h.last().Kind())
		require.Equal(t, domain.TriggerManual, h.last().Trigger)
		// Recovery works as for an automatic open.
		require.True(t, h.at(time.Minute).permit().Granted)
		require.Equal(t, domain.StateHalfOpen, h.b.State)

		res = h.cmd(manual(domain.ActionAuto))
		require.ErrorIs(t, res.Err, domain.ErrNoChange)
		require.False(t, res.Applied)
		require.False(t, res.Changed)
	})
	t.Run("disable always admits and never trips", func(t *testing.T) {
		t.Parallel()
		h := newBrk(t, domain.DefaultConfig())
		h.trip()
		res := h.cmd(manual(domain.ActionDisable))
		require.True(t, res.Applied)
		require.Equal(t, domain.ModeDisabled, h.b.Mode)
		require.Equal(t, domain.StateOpen, h.b.State)
		require.Equal(t, &domain.Manual{Actor: "oncall-sre", Reason: "vendor maintenance"}, h.b.Manual)
		require.Equal(t, domain.DecisionAllow, h.b.Allows(h.env.Now))
		require.True(t, h.permit().Granted)
		h.at(2 * time.Hour).tick()
		require.Equal(t, domain.ModeDisabled, h.b.Mode, "disabled has no expiry")
		require.ErrorIs(t, h.cmd(manual(domain.ActionDisable)).Err, domain.ErrNoChange)
	})
	t.Run("metrics_only records and never trips", func(t *testing.T) {
		t.Parallel()
		h := newBrk(t, domain.DefaultConfig())
		require.True(t, h.cmd(manual(domain.ActionMetricsOnly)).Applied)
		h.fail("a", 20)
		require.Equal(t, domain.StateClosed, h.b.State)
		require.Equal(t, int64(20), h.b.Window.Failures)
		require.Equal(t, domain.DecisionAllow, h.b.Allows(h.env.Now))
		require.True(t, h.cmd(manual(domain.ActionAuto)).Applied)
		h.fail("a", 1)
		require.Equal(t, domain.StateOpen, h.b.State, "back in auto the counted window trips")
	})
}

func TestBreakerHalfOpenCommand(t *testing.T) {
	t.Parallel()
	watchdog := func(trigger domain.Trigger) domain.Command {
		return domain.Command{ID: "wd-" + string(trigger), Action: domain.ActionHalfOpen, Trigger: trigger}
	}
	t.Run("recovery_timeout", func(t *testing.T) {
		t.Parallel()
		h := newBrk(t, domain.DefaultConfig())
		require.ErrorIs(t, h.cmd(watchdog(domain.TriggerRecoveryTimeout)).Err, domain.ErrNotOpen)
		h.trip()
		res := h.at(30 * time.Second).cmd(watchdog(domain.TriggerRecoveryTimeout))
		require.ErrorIs(t, res.Err, domain.ErrRecoveryNotDue)
		require.False(t, res.Applied)
		res = h.at(time.Minute).cmd(watchdog(domain.TriggerRecoveryTimeout))
		require.NoError(t, res.Err)
		require.True(t, res.Applied)
		require.Equal(t, domain.StateHalfOpen, h.b.State)
		require.Equal(t, domain.TriggerRecoveryTimeout, h.last().Trigger)
		require.Equal(t, domain.TransitionHalfOpened, h.last().Kind())
		require.Equal(t, 0, h.b.HalfOpen.Issued, "the watchdog takes no permit")
		require.Equal(t, "wd-recovery_timeout", h.b.LastCommandID)
	})
	t.Run("stuck_half_open", func(t *testing.T) {
		t.Parallel()
		h := newBrk(t, domain.DefaultConfig())
		h.trip()
		h.at(time.Minute).permit()
		require.ErrorIs(t, h.cmd(watchdog(domain.TriggerStuckHalfOpen)).Err, domain.ErrNotStuck, "window not full")
		h.permit()
		h.permit()
		require.ErrorIs(t, h.cmd(watchdog(domain.TriggerStuckHalfOpen)).Err, domain.ErrNotStuck, "window not old")
		res := h.at(2 * time.Minute).cmd(watchdog(domain.TriggerStuckHalfOpen))
		require.True(t, res.Applied)
		require.Equal(t, domain.TriggerStuckHalfOpen, h.last().Trigger)
		require.Equal(t, domain.HalfOpen{Permits: 3, StartedAt: brkT0.Add(2 * time.Minute)}, h.b.HalfOpen)
	})
	t.Run("unknown trigger", func(t *testing.T) {
		t.Parallel()
		h := newBrk(t, domain.DefaultConfig())
		for _, tr := range []domain.Trigger{domain.TriggerAuto, domain.TriggerManual, domain.TriggerHalfOpenFailure, "boom"} {
			require.ErrorIs(t, h.cmd(watchdog(tr)).Err, domain.ErrInvalidCommand, tr)
		}
	})
	t.Run("manual_expired", func(t *testing.T) {
		t.Parallel()
		for _, action := range []domain.Action{domain.ActionOpen, domain.ActionClose} {
			h := newBrk(t, domain.DefaultConfig())
			require.ErrorIs(t, h.cmd(watchdog(domain.TriggerManualExpired)).Err, domain.ErrNoChange, "auto has no expiry")
			c := manual(action)
			c.TTL = domain.Duration(10 * time.Minute)
			require.True(t, h.cmd(c).Applied)
			res := h.at(10*time.Minute - time.Second).cmd(watchdog(domain.TriggerManualExpired))
			require.ErrorIs(t, res.Err, domain.ErrNoChange, "%s: not expired yet", action)
			require.False(t, res.Changed)

			h.env.Governance.KillSwitch.Active = true // an expiry is not a manual action
			res = h.at(10 * time.Minute).cmd(watchdog(domain.TriggerManualExpired))
			require.True(t, res.Applied, "%s: %v", action, res.Err)
			tr := h.last()
			require.Equal(t, domain.TriggerManualExpired, tr.Trigger)
			require.Equal(t, domain.TransitionHalfOpened, tr.Kind())
			require.Equal(t, domain.StateHalfOpen, h.b.State)
			require.Equal(t, domain.ModeAuto, h.b.Mode)
			require.Nil(t, h.b.Manual)
			require.Equal(t, "wd-manual_expired", h.b.LastCommandID)

			res = h.cmd(domain.Command{ID: "again", Action: domain.ActionHalfOpen, Trigger: domain.TriggerManualExpired})
			require.ErrorIs(t, res.Err, domain.ErrNoChange, "a second expiry changes nothing")
		}
	})
	t.Run("manual_expired leaves disable alone", func(t *testing.T) {
		t.Parallel()
		h := newBrk(t, domain.DefaultConfig())
		require.True(t, h.cmd(manual(domain.ActionDisable)).Applied)
		require.ErrorIs(t, h.at(1000*time.Hour).cmd(watchdog(domain.TriggerManualExpired)).Err, domain.ErrNoChange)
		require.Equal(t, domain.ModeDisabled, h.b.Mode)
	})
	t.Run("override_expired", func(t *testing.T) {
		t.Parallel()
		h := newBrk(t, domain.DefaultConfig())
		require.ErrorIs(t, h.cmd(watchdog(domain.TriggerOverrideExpired)).Err, domain.ErrNoChange, "no override")
		c := manual(domain.ActionOverride)
		c.TTL = domain.Duration(time.Minute)
		require.True(t, h.cmd(c).Applied)
		require.ErrorIs(t, h.at(59*time.Second).cmd(watchdog(domain.TriggerOverrideExpired)).Err, domain.ErrNoChange, "still active")
		res := h.at(time.Minute).cmd(watchdog(domain.TriggerOverrideExpired))
		require.True(t, res.Applied, "%v", res.Err)
		require.Equal(t, domain.TriggerOverrideExpired, h.last().Trigger)
		require.Equal(t, domain.TransitionModeChanged, h.last().Kind())
		require.Nil(t, h.b.Override)
		require.Equal(t, domain.StateClosed, h.b.State)
	})
	t.Run("not refused by the kill switch", func(t *testing.T) {
		t.Parallel()
		h := newBrk(t, domain.DefaultConfig())
		h.env.Governance.KillSwitch.Active = true
		h.trip()
		require.True(t, h.at(time.Minute).cmd(watchdog(domain.TriggerRecoveryTimeout)).Applied)
	})
}

func TestBreakerOverride(t *testing.T) {
	t.Parallel()
	h := newBrk(t, domain.DefaultConfig())
	c := manual(domain.ActionOverride)
	res := h.cmd(c)
	require.True(t, res.Applied)
	require.Equal(t, domain.TransitionModeChanged, h.last().Kind())
	require.Equal(t, domain.TriggerManual, h.last().Trigger)
	o := h.b.Override
	require.NotNil(t, o)
	require.Equal(t, 10, *o.FailureThreshold, "seed default: ×2 failure_threshold")
	require.Equal(t, domain.Duration(3*time.Minute), *o.RecoveryTimeout, "seed default: ×3 recovery_timeout")
	require.Equal(t, brkT0.Add(domain.OverrideDefaultTTL), o.ExpiresAt)
	require.Zero(t, o.Renewals)

	// A renewal replaces the fields. The override is in force: 9 consecutive
	// failures among 12 calls reach neither failure_threshold 10 nor the 90%
	// rate threshold.
	ft, rate := 10, 90.0
	c.Override = &domain.ThresholdOverride{FailureThreshold: &ft, FailureRateThreshold: &rate}
	c.TTL = domain.Duration(30 * time.Second)
	res = h.cmd(c)
	require.True(t, res.Applied)
	require.Equal(t, 1, h.b.Override.Renewals)
	require.Nil(t, h.b.Override.RecoveryTimeout, "a renewal replaces the fields")
	h.report("a", 3, 0, 0)
	h.fail("a", 9)
	require.Equal(t, domain.StateClosed, h.b.State)

	require.True(t, h.cmd(c).Applied)
	require.True(t, h.cmd(c).Applied)
	require.Equal(t, domain.MaxOverrideRenewals, h.b.Override.Renewals)
	res = h.cmd(c)
	require.ErrorIs(t, res.Err, domain.ErrOverrideRenewalLimit)
	require.False(t, res.Changed)

	// The override expires on a tick; the next failure trips with the base
	// config (9+1 consecutive failures ≥ 5).
	require.Empty(t, h.at(29*time.Second).tick().Transitions)
	res = h.at(30 * time.Second).tick()
	require.Len(t, res.Transitions, 1)
	require.Equal(t, domain.TriggerOverrideExpired, res.Transitions[0].Trigger)
	require.Equal(t, domain.TransitionModeChanged, res.Transitions[0].Kind())
	require.Nil(t, h.b.Override)
	h.fail("a", 1)
	require.Equal(t, domain.StateOpen, h.b.State)

	// After expiry a new override starts again at zero renewals.
	require.True(t, h.cmd(c).Applied)
	require.Zero(t, h.b.Override.Renewals)
	require.True(t, h.cmd(manual(domain.ActionClearOverride)).Applied)
	require.Nil(t, h.b.Override)
	require.Equal(t, domain.TriggerManual, h.last().Trigger)
	require.ErrorIs(t, h.cmd(manual(domain.ActionClearOverride)).Err, domain.ErrNoChange)

	bad := 150.0
	c.Override = &domain.ThresholdOverride{FailureRateThreshold: &bad}
	res = h.cmd(c)
	require.ErrorIs(t, res.Err, domain.ErrInvalidCommand)
	require.ErrorIs(t, res.Err, domain.ErrInvalidConfig)
	require.Contains(t, res.Err.Error(), "failure_rate_threshold")
}

func TestBreakerOverrideDoesNotShareCommandPointers(t *testing.T) {
	t.Parallel()
	h := newBrk(t, domain.DefaultConfig())
	ft := 7
	c := manual(domain.ActionOverride)
	c.Override = &domain.ThresholdOverride{FailureThreshold: &ft}
	h.cmd(c)
	ft = 1
	require.Equal(t, 7, *h.b.Override.FailureThreshold)
}

func TestBreakerKillSwitch(t *testing.T) {
	t.Parallel()
	for _, action := range []domain.Action{domain.ActionOpen, domain.ActionClose, domain.ActionAuto,
		domain.ActionDisable, domain.ActionMetricsOnly, domain.ActionOverride, domain.ActionClearOverride} {
		t.Run(string(action), func(t *testing.T) {
			t.Parallel()
			h := newBrk(t, domain.DefaultConfig())
			h.env.Governance.KillSwitch.Active = true
			before := h.b
			res := h.cmd(manual(action))
			require.ErrorIs(t, res.Err, domain.ErrKillSwitchOn)
			require.False(t, res.Applied)
			require.False(t, res.KillSwitchOverridden)
			require.Equal(t, before, h.b)
		})
	}
	h := newBrk(t, domain.DefaultConfig())
	h.env.Governance.KillSwitch.Active = true
	c := manual(domain.ActionOpen)
	c.OverrideKillSwitch = true
	res := h.cmd(c)
	require.True(t, res.Applied)
	require.True(t, res.KillSwitchOverridden, "the worker audits the bypass")
	require.Equal(t, domain.ModeForcedOpen, h.b.Mode)
	require.Len(t, res.Transitions, 1)
	require.True(t, res.Transitions[0].KillSwitchOverride, "the transition's event says it went through the kill switch")

	h.env.Governance.KillSwitch.Active = false
	c = manual(domain.ActionClose)
	res = h.cmd(c)
	require.True(t, res.Applied)
	require.False(t, res.KillSwitchOverridden, "no bypass without a kill switch")
	require.Len(t, res.Transitions, 1)
	require.False(t, res.Transitions[0].KillSwitchOverride)
}

func TestBreakerRefusesBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   domain.Input
		want error
	}{
		{"negative count", domain.ReportInput(domain.Report{Seq: 1, Failures: -1}), domain.ErrInvalidReport},
		{"trailing above failures", domain.ReportInput(domain.Report{Seq: 1, Successes: 1, Failures: 1, TrailingFailures: 2}), domain.ErrInvalidReport},
		{"slow above calls", domain.ReportInput(domain.Report{Seq: 1, Successes: 1, SlowCalls: 2}), domain.ErrInvalidReport},
		{"unknown action", domain.CommandInput(domain.Command{Action: "explode", Actor: "a", Reason: "r"}), domain.ErrInvalidCommand},
		{"manual action without actor", domain.CommandInput(domain.Command{Action: domain.ActionOpen, Reason: "r"}), domain.ErrInvalidCommand},
		{"manual action without reason", domain.CommandInput(domain.Command{Action: domain.ActionClose, Actor: "a"}), domain.ErrInvalidCommand},
		{"zero input", domain.Input{}, domain.ErrUnknownInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := domain.NewBreaker("payments")
			next, res := b.Apply(tt.in, domain.Env{Now: brkT0, Config: domain.DefaultConfig()})
			require.ErrorIs(t, res.Err, tt.want)
			require.False(t, res.Changed)
			require.False(t, res.Applied)
			require.Equal(t, b, next)
		})
	}
}

func TestBreakerReportsFoldOnce(t *testing.T) {
	t.Parallel()
	h := newBrk(t, domain.DefaultConfig())
	r := domain.Report{Node: "a", Seq: 7, Successes: 3}
	require.False(t, h.apply(domain.ReportInput(r)).Ignored)
	require.Equal(t, uint64(7), h.b.LastSeq)
	for _, seq := range []uint64{7, 5} {
		r.Seq = seq
		res := h.apply(domain.ReportInput(r))
		require.True(t, res.Ignored, "seq %d", seq)
		require.False(t, res.Changed)
	}
	require.Equal(t, int64(3), h.b.Window.Successes)
	r.Seq = 0
	require.False(t, h.apply(domain.ReportInput(r)).Ignored, "an unsequenced report is always folded")
	require.Equal(t, uint64(7), h.b.LastSeq)
	require.Equal(t, int64(6), h.b.Window.Successes)
}

func TestBreakerApplyDoesNotModifyItsReceiver(t *testing.T) {
	t.Parallel()
	h := newBrk(t, domain.DefaultConfig())
	h.report("a", 2, 1, 1)
	c := manual(domain.ActionOverride)
	h.cmd(c)
	snapshot, err := json.Marshal(h.b)
	require.NoError(t, err)

	env := h.env
	in := domain.ReportInput(domain.Report{Node: "b", Seq: 100, Failures: 2, TrailingFailures: 2})
	first, _ := h.b.Apply(in, env)
	second, _ := h.b.Apply(in, env)
	require.Equal(t, first, second, "the same fold twice gives the same breaker")
	after, err := json.Marshal(h.b)
	require.NoError(t, err)
	require.JSONEq(t, string(snapshot), string(after))
	require.Equal(t, []string{"a"}, h.b.Window.Buckets[0].Nodes)
}

func TestBreakerAllows(t *testing.T) {
	t.Parallel()
	recovery := brkT0.Add(time.Minute)
	tests := []struct {
		name  string
		state domain.State
		mode  domain.Mode
		now   time.Time
		want  domain.Decision
	}{
		{"closed", domain.StateClosed, domain.ModeAuto, brkT0, domain.DecisionAllow},
		{"open before recovery_at", domain.StateOpen, domain.ModeAuto, brkT0, domain.DecisionDeny},
		{"open at recovery_at", domain.StateOpen, domain.ModeAuto, recovery, domain.DecisionAskPermit},
		{"half_open", domain.StateHalfOpen, domain.ModeAuto, brkT0, domain.DecisionAskPermit},
		{"forced_open", domain.StateOpen, domain.ModeForcedOpen, recovery, domain.DecisionDeny},
		{"forced_closed", domain.StateClosed, domain.ModeForcedClosed, brkT0, domain.DecisionAllow},
		{"disabled while open", domain.StateOpen, domain.ModeDisabled, brkT0, domain.DecisionAllow},
		{"metrics_only while open", domain.StateOpen, domain.ModeMetricsOnly, brkT0, domain.DecisionAllow},
		{"unknown state fails open", "melted", domain.ModeAuto, brkT0, domain.DecisionAllow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := domain.Breaker{Service: "payments", State: tt.state, Mode: tt.mode, RecoveryAt: recovery}
			require.Equal(t, tt.want, b.Allows(tt.now))
		})
	}
}

func TestBreakerAllowsDoesNotAllocate(t *testing.T) { //nolint:paralleltest // AllocsPerRun refuses parallel tests
	b := domain.Breaker{Service: "payments", State: domain.StateOpen, Mode: domain.ModeAuto, RecoveryAt: brkT0}
	allocs := testing.AllocsPerRun(100, func() { _ = b.Allows(brkT0) })
	require.Zero(t, allocs)
}

func TestDecisionString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "deny", domain.DecisionDeny.String())
	require.Equal(t, "allow", domain.DecisionAllow.String())
	require.Equal(t, "ask_permit", domain.DecisionAskPermit.String())
	require.Equal(t, "Decision(9)", domain.Decision(9).String())
}

func TestTransitionKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		from, to domain.State
		want     domain.TransitionKind
	}{
		{domain.StateClosed, domain.StateOpen, domain.TransitionOpened},
		{domain.StateHalfOpen, domain.StateOpen, domain.TransitionOpened},
		{domain.StateOpen, domain.StateHalfOpen, domain.TransitionHalfOpened},
		{domain.StateHalfOpen, domain.StateClosed, domain.TransitionClosed},
		{domain.StateOpen, domain.StateOpen, domain.TransitionModeChanged},
		{domain.StateHalfOpen, domain.StateHalfOpen, domain.TransitionModeChanged},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, domain.Transition{From: tt.from, To: tt.to}.Kind(), "%s → %s", tt.from, tt.to)
	}
}

func TestAggregateFailureRate(t *testing.T) {
	t.Parallel()
	w := func(s, f int64) domain.Breaker {
		return domain.Breaker{Window: domain.Window{WindowStats: domain.WindowStats{Successes: s, Failures: f}}}
	}
	tests := []struct {
		name     string
		breakers []domain.Breaker
		want     float64
	}{
		{"none", nil, 0},
		{"no calls", []domain.Breaker{w(0, 0), w(0, 0)}, 0},
		{"one breaker", []domain.Breaker{w(3, 1)}, 0.25},
		{"sum over calls, not a mean of rates", []domain.Breaker{w(0, 1), w(99, 0)}, 0.01},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.InDelta(t, tt.want, domain.AggregateFailureRate(tt.breakers), 1e-12)
		})
	}
}

func TestBreakerValidate(t *testing.T) {
	t.Parallel()
	ok := domain.NewBreaker("payments")
	require.NoError(t, ok.Validate())
	tests := []struct {
		name   string
		modify func(*domain.Breaker)
	}{
		{"unknown state", func(b *domain.Breaker) { b.State = "ajar" }},
		{"unknown mode", func(b *domain.Breaker) { b.Mode = "chaos" }},
		{"forced_open while closed", func(b *domain.Breaker) {
			b.Mode = domain.ModeForcedOpen
			b.Manual = &domain.Manual{Actor: "a", Reason: "r", ExpiresAt: brkT0}
		}},
		{"forced without manual", func(b *domain.Breaker) { b.Mode = domain.ModeForcedClosed }},
		{"too many permits", func(b *domain.Breaker) {
			b.State = domain.StateHalfOpen
			b.HalfOpen = domain.HalfOpen{Permits: 3, Issued: 4}
		}},
		{"open without recovery_at", func(b *domain.Breaker) { b.State = domain.StateOpen }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := domain.NewBreaker("payments")
			tt.modify(&b)
			require.ErrorIs(t, b.Validate(), domain.ErrInvalidBreaker)
		})
	}
}

// brkFullyPopulated is a breaker with every field of the KV contract set.
func brkFullyPopulated() domain.Breaker {
	ft := 10
	rt := domain.Duration(3 * time.Minute)
	return domain.Breaker{
		Service:    "payments",
		State:      domain.StateHalfOpen,
		Mode:       domain.ModeDisabled,
		Generation: 7,
		OpenedAt:   brkT0,
		RecoveryAt: brkT0.Add(2 * time.Minute),
		Reopens:    1,
		Window: domain.Window{
			WindowStats: domain.WindowStats{Successes: 12, Failures: 6, SlowCalls: 3,
				FailureRate: 100.0 / 3, SlowCallRate: 100.0 / 6, FailingNodes: 2},
			Buckets: []domain.Bucket{
				{Start: brkT0.Add(54 * time.Second), Successes: 10, Failures: 4, SlowCalls: 1, Nodes: []string{"node-a", "node-b"}},
				{Start: brkT0.Add(60 * time.Second), Successes: 2, Failures: 2, SlowCalls: 2, Nodes: []string{"node-a"}},
			},
		},
		ConsecutiveFailures: 2,
		HalfOpen:            domain.HalfOpen{Permits: 3, Issued: 2, Successes: 1, StartedAt: brkT0.Add(2 * time.Minute)},
		Manual:              &domain.Manual{Actor: "oncall-sre", Reason: "vendor maintenance", ExpiresAt: brkT0.Add(90 * time.Minute)},
		Override: &domain.Override{
			ThresholdOverride: domain.ThresholdOverride{FailureThreshold: &ft, RecoveryTimeout: &rt},
			Actor:             "mesh-coordinator", Reason: "regional failover",
			ExpiresAt: brkT0.Add(10 * time.Minute), Renewals: 1,
		},
		LastTransition: &domain.LastTransition{From: domain.StateOpen, To: domain.StateHalfOpen,
			Trigger: domain.TriggerRecoveryTimeout, At: brkT0.Add(2 * time.Minute)},
		LastCommandID: "0b7f9a4e-4c1d-4d7a-9a51-3f2e1c0d9b8a",
		LastSeq:       4242,
		ActiveAt:      brkT0.Add(2 * time.Minute),
	}
}

func TestBreakerJSONGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		b    domain.Breaker
	}{
		{"breaker_full.golden", brkFullyPopulated()},
		{"breaker_new.golden", domain.NewBreaker("payments")},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, tt.b.Validate())
			got, err := json.MarshalIndent(tt.b, "", "  ")
			require.NoError(t, err)
			got = append(got, '\n')
			path := filepath.Join("testdata", tt.file)
			if brkUpdateGolden() {
				require.NoError(t, os.MkdirAll("testdata", 0o755))
				require.NoError(t, os.WriteFile(path, got, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test -update to create it")
			require.Equal(t, string(want), string(got))

			var back domain.Breaker
			require.NoError(t, json.Unmarshal(want, &back))
			require.Equal(t, tt.b, back)
		})
	}
}

func BenchmarkApplyReport(b *testing.B) {
	env := domain.Env{Now: brkT0, Config: domain.DefaultConfig()}
	br := domain.NewBreaker("payments")
	// A warm window: ten buckets with a few failing nodes.
	for i := range 10 {
		env.Now = brkT0.Add(time.Duration(i) * 6 * time.Second)
		for n := range 4 {
			br, _ = br.Apply(domain.ReportInput(domain.Report{Node: string(rune('a' + n)), Successes: 100, Failures: 1}), env)
		}
	}
	in := domain.ReportInput(domain.Report{Node: "a", Successes: 1})
	b.ReportAllocs()
	for b.Loop() {
		_, _ = br.Apply(in, env)
	}
}

func BenchmarkAllows(b *testing.B) {
	br := domain.Breaker{Service: "payments", State: domain.StateOpen, Mode: domain.ModeAuto, RecoveryAt: brkT0}
	now := brkT0.Add(-time.Second)
	b.ReportAllocs()
	var d domain.Decision
	for b.Loop() {
		d = br.Allows(now)
	}
	_ = d
}

// TestBreakerRefusesAnExpiredCommand: a command folded after its
// valid_until is refused and changes nothing; at its deadline it applies.
func TestBreakerRefusesAnExpiredCommand(t *testing.T) {
	t.Parallel()
	h := newBrk(t, domain.DefaultConfig())
	c := manual(domain.ActionOpen)
	c.ValidUntil = brkT0.Add(5 * time.Second)
	before := h.b
	res := h.at(6 * time.Second).cmd(c)
	require.ErrorIs(t, res.Err, domain.ErrCommandExpired)
	require.Contains(t, res.Err.Error(), "not applied")
	require.False(t, res.Applied)
	require.Equal(t, before, h.b, "nothing changes")

	res = h.at(5 * time.Second).cmd(c)
	require.True(t, res.Applied, "at its deadline it is still valid")
	require.Equal(t, domain.ModeForcedOpen, h.b.Mode)
	require.False(t, domain.Command{}.Expired(brkT0.Add(1000*time.Hour)), "no deadline, never expired")
}
