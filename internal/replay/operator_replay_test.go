package replay_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
)

// operatorSetup serves the DLQ endpoints with the real engine behind them.
func operatorSetup(t *testing.T) (*engineEnv, *apiEnv) {
	t.Helper()
	env := newEngineEnv(t)
	api := replay.NewAPI(env.nats.Conn, env.store, env.engine(t, "w1", nil, nil),
		replay.APIConfig{Node: "w1", Now: env.clock.Now})
	require.NoError(t, api.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, api.Stop(context.Background())) })
	return env, &apiEnv{nc: env.nats.Conn, store: env.store, api: api}
}

func TestOperatorReplayOneEntryThroughTheEngine(t *testing.T) {
	t.Parallel()
	env, api := operatorSetup(t)
	ids := env.insertEntries(t, "payments", 3, nil)
	svc := env.serve(t, "payments", engineOK)
	// No breaker state: the service never tripped, its breaker is closed.

	var reply replay.DLQReplayReply
	api.ok(t, events.DLQOpReplay, mustJSON(t, map[string]string{"id": ids[1], "actor": "sre", "reason": "customer asked"}), &reply)
	require.Equal(t, domain.DLQReplayed, reply.Entry.Status)
	require.Equal(t, 1, reply.Result.SuccessCount)
	require.Equal(t, map[string]int{ids[1]: 1}, svc.perEntry(), "only the chosen entry is delivered, once")

	// Replaying it again delivers nothing: replayed is terminal.
	msg := api.call(t, events.DLQOpReplay, mustJSON(t, map[string]string{"id": ids[1], "actor": "sre", "reason": "again"}))
	require.Equal(t, 1, svc.count())
	if msg.Header.Get(micro.ErrorCodeHeader) == "" {
		var again replay.DLQReplayReply
		require.NoError(t, json.Unmarshal(msg.Data, &again))
		require.Zero(t, again.Result.SuccessCount)
	}
	for _, id := range []string{ids[0], ids[2]} {
		require.Equal(t, domain.DLQPending, env.statuses(t, []string{id})[id].Status)
	}
}

func TestOperatorReplayBatchRetriesEntriesThatRequireReview(t *testing.T) {
	t.Parallel()
	env, api := operatorSetup(t)
	ids := env.insertEntries(t, "ledger", 4, nil)
	var healthy atomic.Bool
	svc := env.serve(t, "ledger", func(int, *nats.Msg) events.ReplayReply {
		if healthy.Load() {
			return events.ReplayReply{OK: true}
		}
		return events.ReplayReply{OK: false, Error: "still down", Retryable: false}
	})
	// Two entries failed for good earlier and require review.
	env.view.set("ledger", domain.StateClosed, 1)
	res, err := env.engine(t, "w0", nil, nil).ReplayEntries(engineCtx(t), "ledger", ids[:2], replay.ReplayOptions{Actor: "sre"})
	require.NoError(t, err)
	require.Equal(t, replay.StopDone, res.Stop)
	require.Equal(t, 2, res.Escalated)
	healthy.Store(true)
	before := svc.count()
	var dry replay.DLQReplayBatchReply
	api.ok(t, events.DLQOpReplayBatch, `{"service":"ledger","status":["requires_review"],"dry_run":true,"actor":"sre","reason":"check"}`, &dry)
	require.Equal(t, 2, dry.Count)
	require.Equal(t, before, svc.count(), "a dry run delivers nothing")

	var reply replay.DLQReplayBatchReply
	api.ok(t, events.DLQOpReplayBatch, `{"service":"ledger","status":["requires_review"],"actor":"sre","reason":"vendor fixed"}`, &reply)
	require.Equal(t, 2, reply.Count)
	require.Len(t, reply.Results, 1)
	require.Equal(t, 2, reply.Results[0].SuccessCount)
	require.Equal(t, map[string]int{ids[0]: 2, ids[1]: 2}, svc.perEntry(), "one failed delivery each, then one replay each")
	st := env.statuses(t, ids)
	require.Equal(t, domain.DLQReplayed, st[ids[0]].Status)
	require.Equal(t, domain.DLQReplayed, st[ids[1]].Status)
	require.Equal(t, domain.DLQPending, st[ids[2]].Status, "entries the filter did not select are untouched")
}

func TestOperatorReplayRespectsGovernanceAndTheBreaker(t *testing.T) {
	t.Parallel()
	env, api := operatorSetup(t)
	ids := env.insertEntries(t, "search", 2, nil)
	svc := env.serve(t, "search", engineOK)

	env.view.set("search", domain.StateOpen, 1)
	var reply replay.DLQReplayReply
	api.ok(t, events.DLQOpReplay, mustJSON(t, map[string]string{"id": ids[0], "actor": "sre", "reason": "try"}), &reply)
	require.Equal(t, string(replay.StopBreakerOpen), reply.Result.Stop)
	require.Zero(t, svc.count(), "nothing is delivered to a service whose breaker is open")

	env.view.set("search", domain.StateClosed, 2)
	env.view.setGovernance(domain.Governance{KillSwitch: domain.KillSwitchState{Active: true, Actor: "cto", Reason: "incident"}})
	api.ok(t, events.DLQOpReplay, mustJSON(t, map[string]string{"id": ids[0], "actor": "sre", "reason": "try"}), &reply)
	require.True(t, reply.Result.GovernanceBlocked)
	require.Zero(t, svc.count(), "the kill switch blocks operator replays too")
	require.Equal(t, domain.DLQPending, env.statuses(t, ids[:1])[ids[0]].Status)
}
