package replay_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/store"
)

func TestReplayOnCloseReplaysTheBacklogExactlyOnce(t *testing.T) {
	t.Parallel()
	env := newEngineEnv(t)
	ctx := engineCtx(t)
	const n = 120
	ids := env.insertEntries(t, "payments", n, func(i int, e *domain.DLQEntry) {
		if i%10 == 9 {
			e.Priority = domain.PriorityCritical
		}
	})
	svc := env.serve(t, "payments", engineOK)
	env.view.set("payments", domain.StateClosed, 3)

	res, err := env.engine(t, "w1", nil, nil).ReplayOnClose(ctx, "payments", replay.ReplayOptions{})
	require.NoError(t, err)
	require.Equal(t, replay.StopDrained, res.Stop)
	require.Equal(t, n, res.Total)
	require.Equal(t, n, res.Success)
	require.Zero(t, res.Failed+res.Skipped+res.Escalated)
	require.Equal(t, 3, res.Batches, "50, 50, then the 20 left")
	require.Equal(t, []string{string(domain.DomainExternalService)}, res.Domains)

	for id, c := range svc.perEntry() {
		require.Equal(t, 1, c, "entry %s delivered %d times", id, c)
	}
	require.Len(t, svc.perEntry(), n)
	// Critical entries come first.
	critical := map[string]bool{}
	for i := 9; i < n; i += 10 {
		critical[ids[i]] = true
	}
	for i, id := range svc.order[:n/10] {
		require.True(t, critical[id], "delivery %d is not critical", i)
	}
	h := svc.headers[0]
	require.Equal(t, "1", h.Get(events.HeaderAttempt))
	require.Equal(t, "charge", h.Get(events.HeaderOperation))
	require.NotEmpty(t, h.Get(events.HeaderIdempotencyKey))
	require.Equal(t, string(events.TypeReplay), h.Get("ce-type"))

	for id, e := range env.statuses(t, ids) {
		require.Equal(t, domain.DLQReplayed, e.Status, id)
		require.Equal(t, domain.ResolutionAutoReplay, e.ResolutionType, id)
	}
	evs := env.drainEvents(t)
	require.Len(t, evs[events.ReplayCompleted], n)
	require.Len(t, evs[events.ReplayBatchCompleted], 1)
	batch := evs[events.ReplayBatchCompleted][0].(events.ReplayBatchEvent)
	require.Equal(t, n, batch.SuccessCount)
	require.Equal(t, events.BatchTriggerCircuitClose, batch.Trigger)

	// A second close finds nothing to do: replayed entries are never
	// delivered again.
	res, err = env.engine(t, "w2", nil, nil).ReplayOnClose(ctx, "payments", replay.ReplayOptions{})
	require.NoError(t, err)
	require.Zero(t, res.Total)
	require.Equal(t, n, svc.count())
}

func TestSecondEngineReportsInflightSkippedAndNeverOverlaps(t *testing.T) {
	t.Parallel()
	env := newEngineEnv(t)
	ctx := engineCtx(t)
	ids := env.insertEntries(t, "orders", 30, nil)
	env.view.set("orders", domain.StateClosed, 1)
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	svc := env.serve(t, "orders", func(n int, _ *nats.Msg) events.ReplayReply {
		if n == 1 {
			once.Do(func() { close(started) })
			<-release
		}
		return events.ReplayReply{OK: true}
	})

	a, b := env.engine(t, "w1", nil, nil), env.engine(t, "w2", nil, nil)
	type out struct {
		res replay.ReplayResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		r, err := a.ReplayOnClose(ctx, "orders", replay.ReplayOptions{})
		done <- out{r, err}
	}()
	<-started
	res, err := b.ReplayOnClose(ctx, "orders", replay.ReplayOptions{})
	require.NoError(t, err)
	require.True(t, res.InflightSkipped)
	require.Equal(t, replay.StopInflight, res.Stop)
	require.Zero(t, res.Total)
	// The same engine asked twice skips too, rather than fencing itself off.
	res, err = a.ReplayOnClose(ctx, "orders", replay.ReplayOptions{})
	require.NoError(t, err)
	require.True(t, res.InflightSkipped)

	close(release)
	o := <-done
	require.NoError(t, o.err)
	require.Equal(t, 30, o.res.Success)
	require.False(t, svc.overlap, "an entry was delivered twice at the same time")
	for _, e := range env.statuses(t, ids) {
		require.Equal(t, domain.DLQReplayed, e.Status)
	}
	skipped := 0
	for _, ev := range env.drainEvents(t)[events.ReplayBatchCompleted] {
		if ev.(events.ReplayBatchEvent).InflightSkipped {
			skipped++
		}
	}
	require.Equal(t, 2, skipped, "each skipped trigger says so in its batch_completed event")
}

func TestKilledWorkerLosesItsLeaseAndAnotherFinishes(t *testing.T) {
	t.Parallel()
	env := newEngineEnv(t)
	ctx := engineCtx(t)
	ids := env.insertEntries(t, "ledger", 40, nil)
	env.view.set("ledger", domain.StateClosed, 1)
	inFirst, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	svc := env.serve(t, "ledger", func(n int, _ *nats.Msg) events.ReplayReply {
		if n == 3 {
			once.Do(func() { close(inFirst) })
			<-release
		}
		return events.ReplayReply{OK: true}
	})

	// Worker A has its own database pool and connection: killing it means
	// closing both while it waits for its third delivery, so it can neither
	// finish nor release its lease.
	storeA, poolA := env.newStorePool(t)
	ncA := env.nats.Connect(t)
	a := env.engine(t, "w-a", storeA, ncA)
	aDone := make(chan error, 1)
	go func() {
		_, err := a.ReplayOnClose(ctx, "ledger", replay.ReplayOptions{})
		aDone <- err
	}()
	<-inFirst
	poolA.Close()
	ncA.Close()
	require.Error(t, <-aDone)
	held, err := env.store.GetLease(ctx, "ledger")
	require.NoError(t, err)
	require.Equal(t, "w-a", held.Holder, "the dead worker still holds the lease")

	// A second worker is refused until the lease expires.
	res, err := env.engine(t, "w-b", nil, nil).ReplayOnClose(ctx, "ledger", replay.ReplayOptions{})
	require.NoError(t, err)
	require.True(t, res.InflightSkipped)
	env.clock.Advance(time.Hour + time.Second)

	b := env.engine(t, "w-b", nil, nil)
	close(release)
	res, err = b.ReplayOnClose(ctx, "ledger", replay.ReplayOptions{})
	require.NoError(t, err)
	require.False(t, res.InflightSkipped)
	require.Equal(t, 40, res.Success, "A completed nothing (completions land per batch): B replays all")
	for id, e := range env.statuses(t, ids) {
		require.Equal(t, domain.DLQReplayed, e.Status, id)
	}
	require.Len(t, svc.perEntry(), 40)
	_, err = env.store.GetLease(ctx, "ledger")
	require.ErrorIs(t, err, store.ErrNotFound, "B released the lease")
}

func TestGovernanceBlocksReplayAndSaysSo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		gov  domain.Governance
		gate domain.GovernanceBlocker
	}{
		{"kill switch", domain.Governance{KillSwitch: domain.KillSwitchState{Active: true, Actor: "sre", Reason: "INC-1"}}, domain.BlockerKillSwitch},
		{"emergency level 2", domain.Governance{Emergency: domain.EmergencyState{Level: domain.EmergencyLevel2}}, domain.BlockerEmergencyLevel},
		{"error budget exhausted", domain.Governance{ErrorBudget: domain.ErrorBudget{Enabled: true, SLOTarget: 0.999, Remaining: 0.04}}, domain.BlockerErrorBudget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newEngineEnv(t)
			ctx := engineCtx(t)
			ids := env.insertEntries(t, "mail", 5, nil)
			env.view.set("mail", domain.StateClosed, 1)
			env.view.setGovernance(tc.gov)
			svc := env.serve(t, "mail", engineOK)

			res, err := env.engine(t, "w1", nil, nil).ReplayOnClose(ctx, "mail", replay.ReplayOptions{})
			require.NoError(t, err)
			require.True(t, res.GovernanceBlocked)
			require.Equal(t, replay.StopGovernance, res.Stop)
			require.NotEmpty(t, res.GovernanceBlockReason)
			require.Zero(t, svc.count())
			for _, e := range env.statuses(t, ids) {
				require.Equal(t, domain.DLQPending, e.Status)
			}

			blocked := env.waitEvent(t, events.ReplayBlocked).(events.ReplayBlockedEvent)
			require.Equal(t, tc.gate, blocked.Gate)
			require.Equal(t, res.GovernanceBlockReason, blocked.Reason)
			batch := env.waitEvent(t, events.ReplayBatchCompleted).(events.ReplayBatchEvent)
			require.True(t, batch.GovernanceBlocked)
			require.Equal(t, res.GovernanceBlockReason, batch.GovernanceBlockReason)

			recs, err := env.store.ListAudit(ctx, "replay:mail", 0, 10)
			require.NoError(t, err)
			require.Len(t, recs, 1)
			require.Equal(t, replay.AuditActionReplayBlocked, recs[0].Action)
			require.Equal(t, res.GovernanceBlockReason, recs[0].Reason)
			_, err = env.store.VerifyAuditChain(ctx, nil)
			require.NoError(t, err)
		})
	}
}

func TestReopenStopsTheDrainWithinOneItem(t *testing.T) {
	t.Parallel()
	env := newEngineEnv(t)
	ctx := engineCtx(t)
	ids := env.insertEntries(t, "search", 20, nil)
	env.view.set("search", domain.StateClosed, 1)
	svc := env.serve(t, "search", func(n int, _ *nats.Msg) events.ReplayReply {
		if n == 3 {
			env.view.set("search", domain.StateOpen, 2)
		}
		return events.ReplayReply{OK: true}
	})

	res, err := env.engine(t, "w1", nil, nil).ReplayOnClose(ctx, "search", replay.ReplayOptions{})
	require.NoError(t, err)
	require.Equal(t, replay.StopBreakerOpen, res.Stop)
	require.Equal(t, 3, svc.count(), "the item in flight finishes, the next is not sent")
	require.Equal(t, 3, res.Success)
	require.Equal(t, 17, res.Skipped)
	pending := 0
	for _, e := range env.statuses(t, ids) {
		if e.Status == domain.DLQPending {
			pending++
			require.Zero(t, e.RetryCount, "no attempt spent on skipped entries")
		}
	}
	require.Equal(t, 17, pending, "the rest of the claimed batch is back to pending")
}

func TestForceCloseReplayFailuresEscalateAtOnce(t *testing.T) {
	t.Parallel()
	env := newEngineEnv(t)
	ctx := engineCtx(t)
	ids := env.insertEntries(t, "billing", 4, nil)
	env.view.set("billing", domain.StateClosed, 5)
	env.serve(t, "billing", func(int, *nats.Msg) events.ReplayReply {
		return events.ReplayReply{Error: "processor unavailable", Retryable: true}
	})

	res, err := env.engine(t, "w1", nil, nil).ReplayOnClose(ctx, "billing",
		replay.ReplayOptions{ForceClose: true, Actor: "oncall"})
	require.NoError(t, err)
	require.Equal(t, 4, res.Failed)
	require.Equal(t, 4, res.Escalated)
	for _, e := range env.statuses(t, ids) {
		require.Equal(t, domain.DLQRequiresReview, e.Status)
		require.Equal(t, domain.RecommendEscalate, e.RecommendedAction)
		require.Equal(t, 1, e.RetryCount)
	}
	evs := env.drainEvents(t)
	require.Len(t, evs[events.ReplayEscalated], 4)
	esc := evs[events.ReplayEscalated][0].(events.ReplayEntryEvent)
	require.Equal(t, replay.ReasonForceClose, esc.Reason)
	require.Equal(t, "oncall", esc.Actor)
	require.Equal(t, "processor unavailable", esc.Error)
}

func TestRetriesWithBackoffThenRequiresReview(t *testing.T) {
	t.Parallel()
	env := newEngineEnv(t)
	ctx := engineCtx(t)
	ids := env.insertEntries(t, "sms", 2, func(_ int, e *domain.DLQEntry) { e.MaxRetries = 3 })
	env.view.set("sms", domain.StateClosed, 1)
	svc := env.serve(t, "sms", func(int, *nats.Msg) events.ReplayReply {
		return events.ReplayReply{Error: "gateway busy", Retryable: true}
	})

	type out struct {
		res replay.ReplayResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		r, err := env.engine(t, "w1", nil, nil).ReplayOnClose(ctx, "sms", replay.ReplayOptions{})
		done <- out{r, err}
	}()
	// Attempt 1 fails → due in 5 s; attempt 2 → 10 s; attempt 3 escalates.
	for _, want := range []time.Duration{5 * time.Second, 10 * time.Second} {
		wait := env.clock.WaitForWaiter(t, time.Minute)
		require.Equal(t, want, wait)
		env.clock.Advance(wait)
	}
	o := <-done
	require.NoError(t, o.err)
	require.Equal(t, replay.StopDrained, o.res.Stop)
	require.Equal(t, 6, o.res.Failed)
	require.Equal(t, 2, o.res.Escalated)
	for id, c := range svc.perEntry() {
		require.Equal(t, 3, c, id)
	}
	for _, e := range env.statuses(t, ids) {
		require.Equal(t, domain.DLQRequiresReview, e.Status)
		require.Equal(t, 3, e.RetryCount)
		require.Len(t, e.ErrorHistory, 3)
	}
	evs := env.drainEvents(t)
	require.Len(t, evs[events.ReplayFailed], 4)
	first := evs[events.ReplayFailed][0].(events.ReplayEntryEvent)
	require.True(t, first.Retryable)
	require.Equal(t, engineT0.Add(5*time.Second), first.NextAttemptAt)
	require.Equal(t, replay.ReasonMaxRetriesExhausted, evs[events.ReplayEscalated][0].(events.ReplayEntryEvent).Reason)
}

func TestNoRespondersLeaveEntriesPendingAndSaySo(t *testing.T) {
	t.Parallel()
	env := newEngineEnv(t)
	ctx := engineCtx(t)
	ids := env.insertEntries(t, "quotes", 10, nil)
	env.view.set("quotes", domain.StateClosed, 1)

	res, err := env.engine(t, "w1", nil, nil).ReplayOnClose(ctx, "quotes", replay.ReplayOptions{})
	require.NoError(t, err)
	require.Equal(t, replay.StopNoResponders, res.Stop)
	require.Equal(t, 10, res.Skipped)
	require.Zero(t, res.Failed)
	for _, e := range env.statuses(t, ids) {
		require.Equal(t, domain.DLQPending, e.Status)
		require.Zero(t, e.RetryCount)
	}
	ev := env.waitEvent(t, events.ReplayFailed).(events.ReplayEntryEvent)
	require.Equal(t, replay.ReasonNoReplayHandler, ev.Reason)
	require.Contains(t, ev.Error, "no replay handler")
	require.Equal(t, domain.DLQPending, ev.Status)
}

func TestNotRetryableAndInvalidReplies(t *testing.T) {
	t.Parallel()
	env := newEngineEnv(t)
	ctx := engineCtx(t)
	ids := env.insertEntries(t, "kyc", 2, nil)
	env.view.set("kyc", domain.StateClosed, 1)
	rejected := make(chan *nats.Msg, 4)
	sub, err := env.nats.Conn.ChanSubscribe("baldur.event.rejected.>", rejected)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	nc := env.nats.Connect(t)
	_, err = nc.Subscribe(events.MustReplaySubject("kyc"), func(m *nats.Msg) {
		if m.Header.Get(events.HeaderDLQID) == ids[0] {
			_ = m.Respond([]byte(`{"ok": false, "error": "document rejected"}`))
			return
		}
		_ = m.Respond([]byte(`{"ok": "yes"}`))
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	res, err := env.engine(t, "w1", nil, nil).ReplayOnClose(ctx, "kyc", replay.ReplayOptions{MaxItems: 2})
	require.NoError(t, err)
	require.Equal(t, replay.StopMaxItems, res.Stop)
	got := env.statuses(t, ids)
	require.Equal(t, domain.DLQRequiresReview, got[ids[0]].Status)
	require.Equal(t, domain.RecommendManualCheck, got[ids[0]].RecommendedAction)
	require.Equal(t, domain.DLQPending, got[ids[1]].Status, "an invalid reply is a failed, retryable attempt")
	require.Equal(t, 1, got[ids[1]].RetryCount)
	select {
	case m := <-rejected:
		require.Equal(t, "baldur.event.rejected.replay_reply", m.Subject)
	case <-time.After(30 * time.Second):
		t.Fatal("no rejected event for the invalid reply")
	}
}

func TestLeaseLostStopsTheDrain(t *testing.T) {
	t.Parallel()
	env := newEngineEnv(t)
	ctx := engineCtx(t)
	env.insertEntries(t, "geo", 5, nil)
	env.view.set("geo", domain.StateClosed, 1)
	env.serve(t, "geo", func(n int, _ *nats.Msg) events.ReplayReply {
		if n == 2 {
			// Another holder takes over once the lease has expired.
			env.clock.Advance(2 * time.Hour)
			_, err := env.store.AcquireLease(context.Background(), "geo", "usurper", time.Hour, env.clock.Now())
			require.NoError(t, err)
		}
		return events.ReplayReply{OK: true}
	})
	res, err := env.engine(t, "w1", nil, nil).ReplayOnClose(ctx, "geo", replay.ReplayOptions{})
	require.ErrorIs(t, err, store.ErrLeaseLost)
	require.Equal(t, replay.StopLeaseLost, res.Stop)
	require.Equal(t, res.Total, res.Success+res.Failed+res.Skipped)
	require.Zero(t, res.Success, "completions under the stale token are refused")
	require.False(t, errors.Is(err, context.Canceled))
}
