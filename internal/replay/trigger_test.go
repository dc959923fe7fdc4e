package replay_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/topology"
)

// triggerPublishClosed publishes the CLOSED transition of svc as a
// breaker-worker does.
func triggerPublishClosed(t *testing.T, env *engineEnv, svc string, gen uint64, trig domain.Trigger, actor string) {
	t.Helper()
	ev := events.TransitionEvent{
		Service: svc, From: domain.StateHalfOpen, To: domain.StateClosed, FromMode: domain.ModeAuto, Mode: domain.ModeAuto,
		Trigger: trig, TriggerReplay: true, Generation: gen, Actor: actor, At: env.clock.Now(),
	}
	if trig == domain.TriggerManual {
		ev.From, ev.Mode, ev.Reason = domain.StateOpen, domain.ModeForcedClosed, "vendor fixed"
	}
	subj, err := events.BreakerEventSubject(svc, events.BreakerClosed)
	require.NoError(t, err)
	msg, err := events.NewMsg(subj, events.NewTransitionEnvelope("breaker-1", ev), ev)
	require.NoError(t, err)
	_, err = env.nats.JS.PublishMsg(t.Context(), msg)
	require.NoError(t, err)
}

func triggerStart(t *testing.T, env *engineEnv, cfg replay.TriggerConfig) *replay.Trigger {
	t.Helper()
	_, err := topology.EnsureReplay(t.Context(), env.nats.JS, topology.Config{})
	require.NoError(t, err)
	tr, err := replay.NewTrigger(env.engine(t, "w1", nil, nil), env.nats.JS, cfg)
	require.NoError(t, err)
	require.NoError(t, tr.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, tr.Stop(ctx))
	})
	return tr
}

func TestTriggerReplaysOnClosedTransitionAndHonoursAutoReplay(t *testing.T) {
	t.Parallel()
	env := newEngineEnv(t)
	autoIDs := env.insertEntries(t, "payments", 25, nil)
	forcedIDs := env.insertEntries(t, "billing", 3, nil)
	manualIDs := env.insertEntries(t, "reports", 3, nil)
	paid := env.serve(t, "payments", engineOK)
	env.serve(t, "billing", func(int, *nats.Msg) events.ReplayReply {
		return events.ReplayReply{Error: "still broken", Retryable: true}
	})
	reports := env.serve(t, "reports", engineOK)
	manual := domain.DefaultConfig()
	manual.AutoReplay = domain.AutoReplayManual
	env.view.setConfig("reports", manual)
	for _, svc := range []string{"payments", "billing", "reports"} {
		env.view.set(svc, domain.StateClosed, 7)
	}
	triggerStart(t, env, replay.TriggerConfig{ContinuousEvery: -1})

	triggerPublishClosed(t, env, "reports", 7, domain.TriggerAuto, "")
	triggerPublishClosed(t, env, "payments", 7, domain.TriggerAuto, "")
	triggerPublishClosed(t, env, "billing", 7, domain.TriggerManual, "oncall")

	got := map[string]events.ReplayBatchEvent{}
	for len(got) < 2 {
		ev := env.waitEvent(t, events.ReplayBatchCompleted).(events.ReplayBatchEvent)
		got[ev.Service] = ev
	}
	require.Equal(t, 25, got["payments"].SuccessCount)
	require.Equal(t, 3, got["billing"].EscalatedCount, "a force-close replay escalates at once")
	require.Equal(t, "oncall", got["billing"].Actor)
	for _, e := range env.statuses(t, autoIDs) {
		require.Equal(t, domain.DLQReplayed, e.Status)
	}
	for _, e := range env.statuses(t, forcedIDs) {
		require.Equal(t, domain.DLQRequiresReview, e.Status)
		require.Equal(t, domain.RecommendEscalate, e.RecommendedAction)
	}
	require.Len(t, paid.perEntry(), 25)

	// auto_replay manual: the event is acked and nothing is replayed.
	cons, err := env.nats.JS.Consumer(t.Context(), topology.StreamEvents, topology.ConsumerReplayTriggers)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := cons.Info(t.Context())
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	}, 30*time.Second, 10*time.Millisecond)
	require.Zero(t, reports.count())
	for _, e := range env.statuses(t, manualIDs) {
		require.Equal(t, domain.DLQPending, e.Status)
	}
}

func TestTriggerDrainsContinuousServicesWhileClosed(t *testing.T) {
	t.Parallel()
	env := newEngineEnv(t)
	ids := env.insertEntries(t, "feeds", 5, nil)
	env.insertEntries(t, "onclose", 2, nil)
	env.serve(t, "feeds", engineOK)
	onclose := env.serve(t, "onclose", engineOK)
	cont := domain.DefaultConfig()
	cont.AutoReplay = domain.AutoReplayContinuous
	env.view.setConfig("feeds", cont)
	env.view.set("feeds", domain.StateClosed, 1)
	env.view.set("onclose", domain.StateClosed, 1)
	triggerStart(t, env, replay.TriggerConfig{ContinuousEvery: time.Minute})

	require.Equal(t, time.Minute, env.clock.WaitForWaiter(t, time.Minute))
	env.clock.Advance(time.Minute)
	ev := env.waitEvent(t, events.ReplayBatchCompleted).(events.ReplayBatchEvent)
	require.Equal(t, "feeds", ev.Service)
	require.Equal(t, events.BatchTriggerContinuous, ev.Trigger)
	require.Equal(t, 5, ev.SuccessCount)
	for _, e := range env.statuses(t, ids) {
		require.Equal(t, domain.DLQReplayed, e.Status)
	}
	require.Zero(t, onclose.count(), "an on_close service waits for its next close")
}

// TestContinuousReplayCostsNothingForQuietServices: of 43 continuous
// services with pending entries, 40 wait for a later attempt: a period
// starts drains for the 3 that are due and no other. While governance blocks
// replays, a period starts none (no blocked event, no audit row per service
// per period).
func TestContinuousReplayCostsNothingForQuietServices(t *testing.T) {
	t.Parallel()
	env := newEngineEnv(t)
	cont := domain.DefaultConfig()
	cont.AutoReplay = domain.AutoReplayContinuous
	var quiet []string
	for i := range 40 {
		svc := fmt.Sprintf("quiet-%02d", i)
		quiet = append(quiet, env.insertEntries(t, svc, 1, func(_ int, e *domain.DLQEntry) {
			e.NextAttemptAt = env.clock.Now().Add(time.Hour)
		})...)
		env.view.setConfig(svc, cont)
		env.view.set(svc, domain.StateClosed, 1)
	}
	due := []string{"due-a", "due-b", "due-c"}
	for _, svc := range due {
		env.insertEntries(t, svc, 2, nil)
		env.serve(t, svc, engineOK)
		env.view.setConfig(svc, cont)
		env.view.set(svc, domain.StateClosed, 1)
	}
	env.view.setGovernance(domain.Governance{KillSwitch: domain.KillSwitchState{Active: true, Actor: "cto", Reason: "incident"}})
	triggerStart(t, env, replay.TriggerConfig{ContinuousEvery: time.Minute})

	// A blocked period: the loop runs it and waits for the next one.
	require.Equal(t, time.Minute, env.clock.WaitForWaiter(t, time.Minute))
	env.clock.Advance(time.Minute)
	require.Equal(t, time.Minute, env.clock.WaitForWaiter(t, time.Minute))
	require.Empty(t, env.drainEvents(t), "no drain starts while the kill switch is on")

	env.view.setGovernance(domain.Governance{})
	env.clock.Advance(time.Minute)
	drained := map[string]int{}
	for range due {
		ev := env.waitEvent(t, events.ReplayBatchCompleted).(events.ReplayBatchEvent)
		require.Equal(t, events.BatchTriggerContinuous, ev.Trigger)
		drained[ev.Service] = ev.SuccessCount
	}
	require.Equal(t, map[string]int{"due-a": 2, "due-b": 2, "due-c": 2}, drained, "only the services with due entries drain")
	for _, e := range env.statuses(t, quiet) {
		require.Equal(t, domain.DLQPending, e.Status)
		require.Zero(t, e.RetryCount)
	}
}
