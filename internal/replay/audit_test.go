package replay_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// auditT0 is the audit tests' epoch.
var auditT0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// auditEnv is a NATS server with the topology, a migrated database and a
// running audit consumer whose handled events arrive on handled.
type auditEnv struct {
	js      jetstream.JetStream
	nc      *nats.Conn
	store   *store.Store
	pool    *pgxpool.Pool
	audit   *replay.Audit
	handled chan auditHandled
}

type auditHandled struct {
	rec      domain.AuditRecord
	appended bool
	ok       bool
}

func auditSetup(t *testing.T) *auditEnv {
	t.Helper()
	n := testenv.NATS(t)
	ctx := t.Context()
	_, err := topology.Ensure(ctx, n.JS, topology.Config{Storage: jetstream.MemoryStorage, Partitions: 1})
	require.NoError(t, err)
	rc, err := topology.EnsureReplay(ctx, n.JS, topology.Config{})
	require.NoError(t, err)
	pool := testenv.Postgres(t)
	env := &auditEnv{js: n.JS, nc: n.Conn, store: store.New(pool, store.WithAuditKey(testenv.AuditKey)), pool: pool, handled: make(chan auditHandled, 64)}
	env.audit = auditStart(t, env, rc.Audit)
	return env
}

// auditStart runs an audit consumer over cons until the test ends.
func auditStart(t *testing.T, env *auditEnv, cons jetstream.Consumer) *replay.Audit {
	t.Helper()
	a := replay.NewAudit(cons, env.store, replay.AuditOptions{
		Publisher: env.js,
		Clock:     func() time.Time { return auditT0 },
		OnRecord: func(rec domain.AuditRecord, appended, ok bool) {
			env.handled <- auditHandled{rec, appended, ok}
		},
	})
	require.NoError(t, a.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, a.Stop(ctx))
	})
	return a
}

func (e *auditEnv) publish(t *testing.T, subject string, env events.Envelope, payload any) {
	t.Helper()
	msg, err := events.NewMsg(subject, env, payload)
	require.NoError(t, err)
	_, err = e.js.PublishMsg(t.Context(), msg)
	require.NoError(t, err)
}

func (e *auditEnv) next(t *testing.T) auditHandled {
	t.Helper()
	select {
	case h := <-e.handled:
		return h
	case <-time.After(10 * time.Second):
		t.Fatal("no event handled by the audit consumer within 10s")
		return auditHandled{}
	}
}

func auditTransition(svc string, gen uint64, trigger domain.Trigger, actor, reason string) events.TransitionEvent {
	return events.TransitionEvent{
		Service: svc, From: domain.StateClosed, To: domain.StateOpen, FromMode: domain.ModeAuto,
		Mode: domain.ModeForcedOpen, Trigger: trigger, Generation: gen, Actor: actor, Reason: reason,
		At: auditT0.Add(time.Duration(gen) * time.Second),
	}
}

func auditTransitionSubject(t *testing.T, ev events.TransitionEvent) string {
	t.Helper()
	subj, err := events.BreakerEventSubject(ev.Service, ev.Event())
	require.NoError(t, err)
	return subj
}

// auditPublishAll publishes one event of every kind the audit consumer reads
// and returns how many of them are audit-worthy.
func auditPublishAll(t *testing.T, env *auditEnv) int {
	t.Helper()
	// A manual transition: audited.
	manual := auditTransition("payments", 1, domain.TriggerManual, "oncall-sre", "vendor maintenance")
	env.publish(t, auditTransitionSubject(t, manual), events.NewTransitionEnvelope("node-1", manual), manual)
	// An automatic transition: audited, by the worker that folded it.
	auto := auditTransition("payments", 2, domain.TriggerRecoveryTimeout, "", "")
	auto.From, auto.To, auto.FromMode, auto.Mode = domain.StateOpen, domain.StateHalfOpen, domain.ModeAuto, domain.ModeAuto
	env.publish(t, auditTransitionSubject(t, auto), events.NewTransitionEnvelope("node-1", auto), auto)
	// A manual transition through the kill switch: audited as an override.
	override := auditTransition("ledger", 3, domain.TriggerManual, "oncall-sre", "INC-4711: ledger must stop")
	override.KillSwitchOverride = true
	env.publish(t, auditTransitionSubject(t, override), events.NewTransitionEnvelope("node-1", override), override)
	// A governance change: audited.
	gov := events.GovernanceChange{
		Key: events.GovernanceKillSwitch, New: json.RawMessage(`{"active": true, "actor": "ic", "reason": "INC-1"}`),
		Actor: "incident-commander", Reason: "INC-4711", At: auditT0,
	}
	subj, err := events.GovernanceEventSubject(gov.Key)
	require.NoError(t, err)
	env.publish(t, subj, events.NewEnvelopeRandomID(events.TypeGovernanceChanged, "node-2", auditT0), gov)
	// An error budget change without an actor: audited, by its source.
	budget := events.GovernanceChange{Key: events.GovernanceErrorBudget, New: json.RawMessage(`{"remaining": 0.04}`), At: auditT0}
	subj, err = events.GovernanceEventSubject(budget.Key)
	require.NoError(t, err)
	env.publish(t, subj, events.NewEnvelopeRandomID(events.TypeGovernanceChanged, "watchdog-1", auditT0), budget)
	// A replay block: audited.
	blocked := events.ReplayBlockedEvent{
		Service: "payments", Gate: domain.BlockerEmergencyLevel, Reason: "emergency level 2 blocks replay", At: auditT0,
	}
	subj, err = events.ReplayEventSubject("payments", events.ReplayBlocked)
	require.NoError(t, err)
	env.publish(t, subj, events.NewEnvelopeRandomID(events.TypeReplayBlocked, "replay-1", auditT0), blocked)
	return auditEvents
}

// auditEvents is how many events auditPublishAll publishes, every one
// audit-worthy.
const auditEvents = 6

func TestAuditRecordsEachAuditWorthyEventOnce(t *testing.T) {
	t.Parallel()
	env := auditSetup(t)
	ctx := t.Context()
	want := auditPublishAll(t, env)

	var got []domain.AuditRecord
	for range auditEvents {
		h := env.next(t)
		if h.ok {
			require.True(t, h.appended)
			got = append(got, h.rec)
		}
	}
	require.Len(t, got, want)

	recs, err := env.store.ListAudit(ctx, "", 0, 100)
	require.NoError(t, err)
	require.Len(t, recs, want, "one row per audit-worthy event")
	bySubject := map[string]domain.AuditRecord{}
	for _, r := range recs {
		bySubject[r.Action] = r
	}
	tests := []struct {
		action, subject, actor, reason string
	}{
		{"breaker.opened", "breaker:payments", "oncall-sre", "vendor maintenance"},
		{"breaker.half_opened", "breaker:payments", "node-1", ""},
		{"breaker.kill_switch_override", "breaker:ledger", "oncall-sre", "INC-4711: ledger must stop"},
		{"governance.kill_switch", "governance:kill_switch", "incident-commander", "INC-4711"},
		{"governance.error_budget", "governance:error_budget", "watchdog-1", ""},
		{"replay.blocked", "replay:payments", "replay-1", "emergency level 2 blocks replay"},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			r, ok := bySubject[tt.action]
			require.True(t, ok, "no record with action %s", tt.action)
			require.Equal(t, tt.subject, r.Subject)
			require.Equal(t, tt.actor, r.Actor)
			require.Equal(t, tt.reason, r.Reason)
			require.NotEmpty(t, r.Details)
		})
	}
	require.NoError(t, env.verify(ctx))
}

func TestAuditRedeliveryDoesNotDuplicate(t *testing.T) {
	t.Parallel()
	env := auditSetup(t)
	ctx := t.Context()
	want := auditPublishAll(t, env)
	for range auditEvents {
		env.next(t)
	}

	// A second durable over the same stream delivers every event again, as a
	// consumer that lost its acks (or was recreated) would.
	_, _, cfg := topology.ReplayConsumerConfigs(topology.Config{})
	cfg.Durable = "audit-again"
	again, err := env.js.CreateConsumer(ctx, topology.StreamEvents, cfg)
	require.NoError(t, err)
	auditStart(t, env, again)
	for range auditEvents {
		h := env.next(t)
		if h.ok {
			require.False(t, h.appended, "redelivered event %s appended again", h.rec.Action)
		}
	}
	recs, err := env.store.ListAudit(ctx, "", 0, 100)
	require.NoError(t, err)
	require.Len(t, recs, want)
	require.NoError(t, env.verify(ctx))
}

func TestAuditDetectsTampering(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sql  string
	}{
		{"modified reason", `UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 2`},
		{"modified actor", `UPDATE audit_log SET actor = 'someone-else' WHERE seq = 1`},
		{"modified details", `UPDATE audit_log SET details = '{"gate": "none"}' WHERE seq = 3`},
		{"deleted row", `DELETE FROM audit_log WHERE seq = 2`},
		{"deleted first row", `DELETE FROM audit_log WHERE seq = 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := auditSetup(t)
			ctx := t.Context()
			auditPublishAll(t, env)
			for range auditEvents {
				env.next(t)
			}
			require.NoError(t, env.verify(ctx))
			_, err := env.pool.Exec(ctx, tt.sql)
			require.NoError(t, err)
			err = env.verify(ctx)
			require.ErrorIs(t, err, domain.ErrAuditChainBroken)
		})
	}
}

func TestAuditRefusesMalformedEvent(t *testing.T) {
	t.Parallel()
	env := auditSetup(t)
	ctx := t.Context()
	rejected := make(chan *nats.Msg, 1)
	sub, err := env.nc.ChanSubscribe("baldur.event.rejected.event", rejected)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, env.nc.Flush())

	id := uuid.NewString()
	msg := &nats.Msg{Subject: "baldur.event.governance.kill_switch", Data: []byte(`{"key": "kill_switch", "bogus": 1}`),
		Header: events.NewEnvelope(events.TypeGovernanceChanged, uuid.MustParse(id), "node-1", auditT0).Header()}
	_, err = env.js.PublishMsg(ctx, msg)
	require.NoError(t, err)

	select {
	case m := <-rejected:
		rej, err := events.DecodeRejected(m.Data)
		require.NoError(t, err)
		require.Equal(t, events.RejectedEvent, rej.Kind)
		require.Equal(t, id, rej.CEID)
		require.Equal(t, "unknown_field", rej.Code)
	case <-time.After(10 * time.Second):
		t.Fatal("no rejected event for a malformed governance change")
	}
	// A well-formed event after it is still recorded: the consumer goes on.
	gov := events.GovernanceChange{Key: events.GovernanceEmergencyLevel, New: json.RawMessage(`{"level": 2}`),
		Actor: "ic", Reason: "INC-2", At: auditT0}
	env.publish(t, "baldur.event.governance.emergency_level", events.NewEnvelopeRandomID(events.TypeGovernanceChanged, "n", auditT0), gov)
	h := env.next(t)
	require.True(t, h.ok)
	require.Equal(t, "governance.emergency_level", h.rec.Action)
	recs, err := env.store.ListAudit(ctx, "", 0, 10)
	require.NoError(t, err)
	require.Len(t, recs, 1)
}

func TestAuditStopAndStart(t *testing.T) {
	t.Parallel()
	a := replay.NewAudit(nil, nil, replay.AuditOptions{})
	require.ErrorIs(t, a.Stop(t.Context()), replay.ErrAuditNotStarted)
}

// verify verifies the audit log the consumer wrote.
func (e *auditEnv) verify(ctx context.Context) error {
	_, err := e.store.VerifyAuditChain(ctx, nil)
	return err
}
