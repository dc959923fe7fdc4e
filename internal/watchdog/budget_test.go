package watchdog_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
	"github.com/baldurfleet/baldur/internal/watchdog"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func publishMsg(t *testing.T, js jetstream.JetStream, subj string, env events.Envelope, payload any) {
	t.Helper()
	msg, err := events.NewMsg(subj, env, payload)
	require.NoError(t, err)
	_, err = js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
}

func outcomes(t *testing.T, js jetstream.JetStream, svc string, succ, fail int64) {
	t.Helper()
	trailing := fail
	if succ > 0 {
		trailing = 0
	}
	publishMsg(t, js, events.MustOutcomeSubject(svc), events.NewEnvelopeRandomID(events.TypeOutcome, "node-1", time.Now()),
		events.OutcomeReport{Successes: succ, Failures: fail, TrailingFailures: trailing})
}

// rollUp drains the rollup consumer until n reports have been written.
func rollUp(t *testing.T, r *watchdog.Rollups, n int64) {
	t.Helper()
	ctx := context.Background()
	for r.Stats().Reports < n {
		_, err := r.Once(ctx)
		require.NoError(t, err)
	}
}

// TestErrorBudgetCrossesWarningAndBlockAndRecovers runs the whole path on a
// real NATS and PostgreSQL: outcome reports into rollups, set_slo_target
// applied by a real breaker-worker, the budget computed at an injected time,
// warning, critical (replay gate closed as a fleet view sees it), recovered,
// each level change an event and an audit record; and the aggregate rate.
func TestErrorBudgetCrossesWarningAndBlockAndRecovers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.NATS(t)
	top, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 4, Storage: jetstream.MemoryStorage})
	require.NoError(t, err)
	st := store.New(testenv.Postgres(t), store.WithAuditKey(testenv.AuditKey))
	view, err := fleetstate.Watch(ctx, env.JS)
	require.NoError(t, err)
	t.Cleanup(view.Stop)

	w, err := breaker.New(env.JS, breaker.Config{Topology: top, Node: "bw-1", Configs: view, Governance: view,
		Clock: time.Now, Conn: env.Conn, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, w.Start(ctx))
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = w.Stop(sctx)
	})

	cons, err := topology.EnsureWatchdog(ctx, env.JS, top.Config)
	require.NoError(t, err)
	_, err = topology.EnsureWatchdog(ctx, env.JS, top.Config) // idempotent
	require.NoError(t, err)
	rollups := watchdog.NewRollups(cons, st, watchdog.RollupOptions{Wait: 200 * time.Millisecond})

	var nowNS atomic.Int64
	nowNS.Store(time.Now().Add(time.Minute).UnixNano())
	now := func() time.Time { return time.Unix(0, nowNS.Load()).UTC() }
	budget, err := watchdog.NewErrorBudget(watchdog.BudgetConfig{Node: "wd-1", JS: env.JS, Governance: top.Governance, Store: st})
	require.NoError(t, err)
	require.Equal(t, "error_budget", budget.Name())

	// Gate off: nothing is computed or written.
	require.NoError(t, budget.Run(ctx, now()))
	require.Zero(t, budget.Stats().Runs)

	// 10 000 good calls over two services.
	outcomes(t, env.JS, "payments", 5000, 0)
	outcomes(t, env.JS, "search", 5000, 0)
	rollUp(t, rollups, 2)
	sums, err := st.SumRollups(ctx, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, store.Outcomes{Successes: 5000}, sums["payments"])

	// SLO 99 % over 1h, set through a governance command and a real worker.
	target := 0.99
	publishMsg(t, env.JS, events.SubjectGovernance, events.NewEnvelopeRandomID(events.TypeGovernance, "cli", time.Now()),
		events.GovernanceCommand{Action: events.ActionSetSLOTarget, SLOTarget: &target,
			SLOWindow: domain.Duration(time.Hour), Actor: "sre-lead", Reason: "fleet objective"})
	require.Eventually(t, func() bool { return view.Governance().ErrorBudget.Enabled }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, 0.99, view.Governance().ErrorBudget.SLOTarget)
	require.Equal(t, time.Hour, view.Governance().ErrorBudget.Window())

	require.NoError(t, budget.Run(ctx, now()))
	require.Equal(t, domain.ErrorBudgetOK, budget.Stats().Level)
	require.Zero(t, budget.Stats().LevelChanges)

	// 10 000 calls at 99 % allow 100 failures. 85 failures (of 10 085
	// calls: 100.85 allowed) leave ~15.7 %: warning.
	outcomes(t, env.JS, "payments", 0, 85)
	rollUp(t, rollups, 3)
	require.NoError(t, budget.Run(ctx, now()))
	require.Equal(t, domain.ErrorBudgetWarning, budget.Stats().Level)
	require.Eventually(t, func() bool { return view.Governance().ErrorBudget.Level == domain.ErrorBudgetWarning }, 5*time.Second, 5*time.Millisecond)
	dec := view.Governance().CheckReplay()
	require.True(t, dec.Allowed)
	require.Contains(t, dec.Warning, "error budget")

	// 10 more failures: ~6 % remains, critical: automated replay blocked.
	outcomes(t, env.JS, "search", 0, 10)
	rollUp(t, rollups, 4)
	require.NoError(t, budget.Run(ctx, now()))
	require.Equal(t, domain.ErrorBudgetCritical, budget.Stats().Level)
	require.Eventually(t, func() bool { return !view.Governance().CheckReplay().Allowed }, 5*time.Second, 5*time.Millisecond)
	require.ErrorIs(t, view.Governance().CheckReplay().Err(), domain.ErrErrorBudgetExhausted)

	// A run with nothing new writes nothing.
	writes := budget.Stats().Writes
	require.NoError(t, budget.Run(ctx, now()))
	require.Equal(t, writes, budget.Stats().Writes)

	// Two hours later the failures are out of the window: recovered.
	nowNS.Add(int64(2 * time.Hour))
	require.NoError(t, budget.Run(ctx, now()))
	require.Equal(t, domain.ErrorBudgetOK, budget.Stats().Level)
	require.Eventually(t, func() bool { return view.Governance().CheckReplay().Allowed }, 5*time.Second, 5*time.Millisecond)
	require.EqualValues(t, 3, budget.Stats().LevelChanges)

	// Events: the worker's set_slo_target change, then three level changes.
	s, err := env.JS.Stream(ctx, topology.StreamEvents)
	require.NoError(t, err)
	oc, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"baldur.event.governance.error_budget"}})
	require.NoError(t, err)
	batch, err := oc.Fetch(4, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	var reasons []string
	for m := range batch.Messages() {
		msg, err := events.Decode(m.Subject(), m.Headers(), m.Data())
		require.NoError(t, err)
		reasons = append(reasons, msg.Payload.(events.GovernanceChange).Reason)
	}
	require.Len(t, reasons, 4)
	require.Equal(t, "fleet objective", reasons[0])
	require.True(t, strings.HasPrefix(reasons[1], "ERROR_BUDGET_WARNING"), reasons[1])
	require.True(t, strings.HasPrefix(reasons[2], "ERROR_BUDGET_CRITICAL"), reasons[2])
	require.Contains(t, reasons[2], "automated replay is blocked")
	require.True(t, strings.HasPrefix(reasons[3], "ERROR_BUDGET_RECOVERED"), reasons[3])

	// Audit: one record per level change.
	recs, err := st.ListAudit(ctx, "governance:error_budget", 0, 10)
	require.NoError(t, err)
	require.Len(t, recs, 3)
	require.Equal(t, "wd-1", recs[0].Actor)
	_, err = st.VerifyAuditChain(ctx, nil)
	require.NoError(t, err)

	// Turning the gate off.
	off := 0.0
	publishMsg(t, env.JS, events.SubjectGovernance, events.NewEnvelopeRandomID(events.TypeGovernance, "cli", time.Now()),
		events.GovernanceCommand{Action: events.ActionSetSLOTarget, SLOTarget: &off, Actor: "sre-lead", Reason: "objective withdrawn"})
	require.Eventually(t, func() bool { return !view.Governance().ErrorBudget.Enabled }, 5*time.Second, 5*time.Millisecond)
	runs := budget.Stats().Runs
	require.NoError(t, budget.Run(ctx, now()))
	require.Equal(t, runs, budget.Stats().Runs)

	// The aggregate failure rate, from the view's breakers.
	agg, err := watchdog.NewAggregate(top.Governance, view, time.Minute)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return view.Len() == 2 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, agg.Run(ctx, now()))
	e, err := top.Governance.Get(ctx, domain.GovernanceKeyAggregate)
	require.NoError(t, err)
	var fa domain.FleetAggregate
	require.NoError(t, json.Unmarshal(e.Value(), &fa))
	require.Equal(t, 2, fa.Breakers)
	require.InDelta(t, view.AggregateFailureRate(), fa.FailureRate, 1e-9)
	require.NoError(t, agg.Run(ctx, now()))
	require.EqualValues(t, 1, agg.Writes(), "unchanged and fresh: not rewritten")
	require.NoError(t, agg.Run(ctx, now().Add(2*time.Minute)))
	require.EqualValues(t, 2, agg.Writes(), "rewritten once due")
}
