package opsclient_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/opsclient/opstest"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/testenv"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), opstest.WaitFor)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, f *opstest.Fleet, opts ...opsclient.Option) *opsclient.Client {
	t.Helper()
	c, err := opsclient.New(testCtx(t), f.NATS.Connect(t), opts...)
	require.NoError(t, err)
	return c
}

func manual(a domain.Action) events.BreakerCommand {
	return events.BreakerCommand{Action: a, Actor: "sre", Reason: "INC-1"}
}

func TestNewWithoutTopologyIsUnreachable(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	_, err := opsclient.New(testCtx(t), env.Conn)
	require.ErrorIs(t, err, opsclient.ErrUnreachable)
	require.ErrorContains(t, err, "baldur_breakers")
}

func TestBreakerCommandsWaitUntilApplied(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)
	f.StartBreakerWorker(t, "w1")
	c := newClient(t, f)
	ctx := testCtx(t)

	a, err := c.BreakerCommand(ctx, "payments", manual(domain.ActionOpen))
	require.NoError(t, err)
	require.False(t, a.NoChange)
	require.Equal(t, domain.StateOpen, a.Breaker.State)
	require.Equal(t, domain.ModeForcedOpen, a.Breaker.Mode)
	require.Equal(t, a.CommandID, a.Breaker.LastCommandID)

	b, rev, err := c.Breaker(ctx, "payments")
	require.NoError(t, err)
	// The worker writes a transition with its pending event, then clears the
	// event once published: the key may be one revision further by now.
	require.GreaterOrEqual(t, rev, a.Revision)
	require.Equal(t, domain.StateOpen, b.State)
	require.Equal(t, a.CommandID, b.LastCommandID)

	a, err = c.BreakerCommand(ctx, "payments", manual(domain.ActionAuto))
	require.NoError(t, err)
	require.Equal(t, domain.ModeAuto, a.Breaker.Mode)
	require.Equal(t, domain.StateOpen, a.Breaker.State, "auto keeps the state")

	// Already auto: nothing is published, nothing waited for.
	a, err = c.BreakerCommand(ctx, "payments", manual(domain.ActionAuto))
	require.NoError(t, err)
	require.True(t, a.NoChange)
	require.Empty(t, a.CommandID)

	a, err = c.BreakerCommand(ctx, "payments", manual(domain.ActionClearOverride))
	require.NoError(t, err)
	require.True(t, a.NoChange, "no override to clear")

	ft := 9
	cmd := manual(domain.ActionOverride)
	cmd.Override = &domain.ThresholdOverride{FailureThreshold: &ft}
	a, err = c.BreakerCommand(ctx, "payments", cmd)
	require.NoError(t, err)
	require.NotNil(t, a.Breaker.Override)
	require.Equal(t, 9, *a.Breaker.Override.FailureThreshold)

	list, err := c.Breakers(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "payments", list[0].Service)

	_, _, err = c.Breaker(ctx, "nobody")
	require.ErrorIs(t, err, opsclient.ErrNotFound)
}

func TestKillSwitchRefusesManualControlUnlessOverridden(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)
	f.StartBreakerWorker(t, "w1")
	c := newClient(t, f)
	ctx := testCtx(t)

	g, err := c.Governance(ctx, events.GovernanceCommand{Action: events.ActionKillSwitchOn, Actor: "cto", Reason: "incident"})
	require.NoError(t, err)
	require.True(t, g.Status.KillSwitch.Active)
	require.NotEmpty(t, g.CommandID)

	g, err = c.Governance(ctx, events.GovernanceCommand{Action: events.ActionKillSwitchOn, Actor: "cto", Reason: "again"})
	require.NoError(t, err)
	require.True(t, g.NoChange)

	_, err = c.BreakerCommand(ctx, "orders", manual(domain.ActionOpen))
	require.ErrorIs(t, err, opsclient.ErrRefused)
	var ref *opsclient.RefusedError
	require.True(t, errors.As(err, &ref))
	require.Equal(t, "kill_switch_on", ref.Code)
	require.Contains(t, ref.Reason, "kill switch is on")

	cmd := manual(domain.ActionOpen)
	cmd.OverrideKillSwitch = true
	a, err := c.BreakerCommand(ctx, "orders", cmd)
	require.NoError(t, err)
	require.Equal(t, domain.StateOpen, a.Breaker.State)

	lvl := domain.EmergencyLevel2
	g, err = c.Governance(ctx, events.GovernanceCommand{Action: events.ActionSetEmergencyLevel, Level: &lvl, Actor: "ic", Reason: "INC-2"})
	require.NoError(t, err)
	require.Equal(t, domain.EmergencyLevel2, g.Status.Emergency.Level)

	st, err := c.GovernanceState(ctx)
	require.NoError(t, err)
	require.True(t, st.KillSwitch.Active)
	require.Equal(t, domain.EmergencyLevel2, st.Emergency.Level)
}

func TestCommandWithoutWorkerIsNotApplied(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)
	c := newClient(t, f, opsclient.WithApplyTimeout(200*time.Millisecond))
	_, err := c.BreakerCommand(testCtx(t), "payments", manual(domain.ActionOpen))
	require.ErrorIs(t, err, opsclient.ErrNotApplied)
	require.ErrorContains(t, err, "no breaker-worker applied the command")
	require.ErrorContains(t, err, "within 200ms")

	_, err = c.BreakerCommand(testCtx(t), "payments", events.BreakerCommand{Action: domain.ActionOpen})
	require.ErrorIs(t, err, opsclient.ErrInvalid, "a manual command without actor and reason is refused before publishing")
}

func TestWatchBreakersSeesChanges(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)
	f.StartBreakerWorker(t, "w1")
	c := newClient(t, f)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	updates, err := c.WatchBreakers(ctx)
	require.NoError(t, err)
	_, err = c.BreakerCommand(ctx, "search", manual(domain.ActionOpen))
	require.NoError(t, err)
	for u := range updates {
		if u.Service == "search" && u.Breaker.State == domain.StateOpen {
			break
		}
	}
	cancel()
	for range updates { // closed once the context ends
	}
}

func TestConfigSetValidatesBeforeWriting(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)
	c := newClient(t, f)
	ctx := testCtx(t)

	tests := []struct {
		name, key, value string
		ok               bool
	}{
		{"service", "payments", `{"failure_threshold": 7}`, true},
		{"defaults", "_defaults", `{"recovery_timeout": "30s"}`, true},
		{"unknown field", "payments", `{"failure_treshold": 7}`, false},
		{"out of range", "payments", `{"failure_threshold": 0}`, false},
		{"not an object", "payments", `[1]`, false},
		{"not JSON", "payments", `{`, false},
		{"sla", "_sla", `{"default_hours": 48}`, true},
		{"sla out of range", "_sla", `{"default_hours": 0}`, false},
		{"unknown fleet key", "_nope", `{}`, false},
		{"bad service name", "pay ments", `{}`, false},
	}
	for _, tc := range tests {
		_, err := c.ConfigSet(ctx, tc.key, []byte(tc.value))
		if tc.ok {
			require.NoError(t, err, tc.name)
			continue
		}
		require.ErrorIs(t, err, opsclient.ErrInvalid, tc.name)
	}
	e, err := c.ConfigGet(ctx, "payments")
	require.NoError(t, err)
	require.JSONEq(t, `{"failure_threshold":7}`, string(e.Value), "the refused values were never written")
	cfg, ok := e.Effective.(domain.Config)
	require.True(t, ok)
	require.Equal(t, 7, cfg.FailureThreshold)
	require.Equal(t, 30*time.Second, cfg.RecoveryTimeout.D(), "the service resolves over _defaults")

	e, err = c.ConfigGet(ctx, "unset")
	require.NoError(t, err)
	require.Equal(t, "null", string(e.Value))
	require.Zero(t, e.Revision)
}

func TestDLQCallsAndTypedErrors(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)
	c := newClient(t, f)
	ctx := testCtx(t)

	err := c.DLQ(ctx, events.DLQOpStats, nil, nil)
	require.ErrorIs(t, err, opsclient.ErrNoReplayWorker)

	r := f.StartReplayWorker(t, "r1")
	id := f.DeadLetter(t, r, "ledger", "timeout talking to the bank")

	var list replay.DLQListReply
	require.NoError(t, c.DLQ(ctx, events.DLQOpList, replay.DLQListRequest{DLQFilter: replay.DLQFilter{Service: "ledger"}}, &list))
	require.Len(t, list.Entries, 1)
	require.Equal(t, id, list.Entries[0].ID)

	err = c.DLQ(ctx, events.DLQOpGet, replay.DLQGetRequest{ID: "0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f"}, nil)
	require.ErrorIs(t, err, opsclient.ErrNotFound)
	var apiErr *opsclient.APIError
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, 404, apiErr.Code)

	err = c.DLQ(ctx, events.DLQOpGet, replay.DLQGetRequest{ID: "nope"}, nil)
	require.ErrorIs(t, err, opsclient.ErrInvalid)

	var stats replay.DLQStatsReply
	require.NoError(t, c.DLQ(ctx, events.DLQOpStats, nil, &stats))
	require.Equal(t, int64(1), stats.Counts["ledger"][domain.DLQPending])

	ac := newClient(t, f, opsclient.WithAuditStore(r.Store))
	var closed replay.DLQEntryReply
	require.NoError(t, ac.DLQ(ctx, events.DLQOpDiscard, replay.DLQCloseRequest{ID: id, Actor: "sre", Reason: "duplicate"}, &closed))
	require.Equal(t, domain.DLQRejected, closed.Status)
	recs, err := ac.AuditList(ctx, opsclient.AuditQuery{})
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	v, err := ac.AuditVerify(ctx)
	require.NoError(t, err)
	require.Positive(t, v.Records)
	require.Equal(t, v.LastSeq, v.AnchoredSeq, "every record's head is anchored in BALDUR_AUDIT")

	_, err = c.AuditList(ctx, opsclient.AuditQuery{})
	require.ErrorIs(t, err, opsclient.ErrNoDatabase)
}
