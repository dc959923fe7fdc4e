package watchdog_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/watchdog"
)

func TestRecoveryTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Second)
	h.startBreakerWorker()
	wd := h.leader(watchdog.Config{})
	b := h.trip("payments")
	require.Eventually(t, func() bool { s, _, _ := wd.Indexed("payments"); return s == domain.StateOpen }, 5*time.Second, time.Millisecond,
		"the watchdog's index sees the trip")

	require.NoError(t, wd.Tick(context.Background()))
	require.Zero(t, wd.Stats().Commands[string(domain.TriggerRecoveryTimeout)], "not due before recovery_at")

	h.clk.Advance(b.RecoveryAt.Sub(h.clk.Now()))
	require.NoError(t, wd.Tick(context.Background()))
	require.Equal(t, int64(1), wd.Stats().Commands[string(domain.TriggerRecoveryTimeout)])

	ev := event(h, "baldur.event.breaker.payments.half_opened", transition(domain.TriggerRecoveryTimeout))
	require.Equal(t, domain.StateOpen, ev.From)
	require.Equal(t, domain.StateHalfOpen, ev.To)
	got := h.breaker("payments", func(b domain.Breaker) bool { return b.State == domain.StateHalfOpen })
	require.Equal(t, domain.TriggerRecoveryTimeout, got.LastTransition.Trigger)
	require.Zero(t, got.HalfOpen.Issued)
}

func TestManualExpired(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Second)
	h.startBreakerWorker()
	wd := h.leader(watchdog.Config{})
	h.command("orders", events.BreakerCommand{Action: domain.ActionOpen, Actor: "sre", Reason: "maintenance",
		TTL: domain.Duration(10 * time.Minute)})
	h.breaker("orders", func(b domain.Breaker) bool { return b.Mode == domain.ModeForcedOpen })
	require.Eventually(t, func() bool { _, m, _ := wd.Indexed("orders"); return !m.IsZero() }, 5*time.Second, time.Millisecond,
		"the watchdog's index sees the forced mode")

	h.clk.Advance(9 * time.Minute)
	require.NoError(t, wd.Tick(context.Background()))
	require.Zero(t, wd.Stats().Commands[string(domain.TriggerManualExpired)])

	h.clk.Advance(time.Minute)
	require.NoError(t, wd.Tick(context.Background()))
	require.Equal(t, int64(1), wd.Stats().Commands[string(domain.TriggerManualExpired)])
	require.Zero(t, wd.Stats().Commands[string(domain.TriggerRecoveryTimeout)], "a forced breaker is not recovered")

	ev := event(h, "baldur.event.breaker.orders.half_opened", transition(domain.TriggerManualExpired))
	require.Equal(t, domain.ModeForcedOpen, ev.FromMode)
	require.Equal(t, domain.ModeAuto, ev.Mode)
	got := h.breaker("orders", func(b domain.Breaker) bool { return b.State == domain.StateHalfOpen })
	require.Equal(t, domain.ModeAuto, got.Mode)
	require.Nil(t, got.Manual)
}

func TestOverrideExpired(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Second)
	h.startBreakerWorker()
	wd := h.leader(watchdog.Config{})
	h.command("search", events.BreakerCommand{Action: domain.ActionOverride, Actor: "mesh", Reason: "failover",
		TTL: domain.Duration(5 * time.Minute), Override: &domain.ThresholdOverride{FailureThreshold: new(20)}})
	h.breaker("search", func(b domain.Breaker) bool { return b.Override != nil })
	require.Eventually(t, func() bool { _, _, o := wd.Indexed("search"); return !o.IsZero() }, 5*time.Second, time.Millisecond,
		"the watchdog's index sees the override")

	h.clk.Advance(5 * time.Minute)
	require.NoError(t, wd.Tick(context.Background()))
	require.Equal(t, int64(1), wd.Stats().Commands[string(domain.TriggerOverrideExpired)])
	ev := event(h, "baldur.event.breaker.search.mode_changed", transition(domain.TriggerOverrideExpired))
	require.Equal(t, domain.StateClosed, ev.To)
	got := h.breaker("search", func(b domain.Breaker) bool { return b.Override == nil })
	require.Equal(t, domain.StateClosed, got.State)
}

func TestStuckHalfOpen(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Second)
	nc := h.startBreakerWorker()
	wd := h.leader(watchdog.Config{})
	b := h.trip("billing")
	h.clk.Advance(b.RecoveryAt.Sub(h.clk.Now()))
	for range 3 { // the first permit moves the breaker to HALF_OPEN
		body, err := json.Marshal(events.PermitRequest{Node: "n1"})
		require.NoError(t, err)
		reply, err := nc.Request(events.MustPermitSubject("billing"), body, 5*time.Second)
		require.NoError(t, err)
		r, err := events.DecodePermitReply(reply.Data)
		require.NoError(t, err)
		require.True(t, r.Granted)
	}
	h.breaker("billing", func(b domain.Breaker) bool { return b.HalfOpen.Issued == 3 })
	require.Eventually(t, func() bool { return wd.Stats().Breakers == 1 }, 5*time.Second, 5*time.Millisecond)

	require.NoError(t, wd.Tick(context.Background()))
	require.Zero(t, wd.Stats().Commands[string(domain.TriggerStuckHalfOpen)], "the window is full but young")

	h.clk.Advance(h.view.Config("billing").HalfOpenStuckTimeout.D())
	require.Eventually(t, func() bool {
		require.NoError(t, wd.Tick(context.Background()))
		return wd.Stats().Commands[string(domain.TriggerStuckHalfOpen)] == 1
	}, 5*time.Second, 10*time.Millisecond, "the index must see the full window")
	ev := event(h, "baldur.event.breaker.billing.mode_changed", transition(domain.TriggerStuckHalfOpen))
	require.Equal(t, domain.StateHalfOpen, ev.From)
	got := h.breaker("billing", func(b domain.Breaker) bool { return b.HalfOpen.Issued == 0 })
	require.Equal(t, h.clk.Now(), got.HalfOpen.StartedAt)
}

// TestCommandSentOncePerGeneration runs no breaker-worker: the breaker never
// moves, so the watchdog holds its command until ResendAfter.
func TestCommandSentOncePerGeneration(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Second)
	wd := h.leader(watchdog.Config{ResendAfter: time.Minute})
	open := domain.Breaker{Service: "ledger", State: domain.StateOpen, Mode: domain.ModeAuto, Generation: 4,
		OpenedAt: h.clk.Now().Add(-time.Hour), RecoveryAt: h.clk.Now().Add(-time.Second)}
	raw, err := json.Marshal(open)
	require.NoError(t, err)
	_, err = h.top.Breakers.Put(context.Background(), "ledger", raw)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return wd.Stats().Breakers == 1 }, 5*time.Second, 5*time.Millisecond)

	sent := func() int64 { return wd.Stats().Commands[string(domain.TriggerRecoveryTimeout)] }
	require.NoError(t, wd.Tick(context.Background()))
	require.NoError(t, wd.Tick(context.Background()))
	h.clk.Advance(59 * time.Second)
	require.NoError(t, wd.Tick(context.Background()))
	require.Equal(t, int64(1), sent())
	require.Equal(t, int64(2), wd.Stats().CommandsHeld)

	h.clk.Advance(time.Second)
	require.NoError(t, wd.Tick(context.Background()))
	require.Equal(t, int64(2), sent(), "sent again after ResendAfter")

	open.Generation = 5 // a new generation is a new deadline
	raw, err = json.Marshal(open)
	require.NoError(t, err)
	_, err = h.top.Breakers.Put(context.Background(), "ledger", raw)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		require.NoError(t, wd.Tick(context.Background()))
		return sent() == 3
	}, 5*time.Second, 10*time.Millisecond)
}

func newEntry(svc string, d domain.FailureDomain, created time.Time) domain.DLQEntry {
	return domain.DLQEntry{ID: uuid.NewString(), Service: svc, Domain: d, Operation: "op",
		FailureType: "TIMEOUT", MaxRetries: 2, CreatedAt: created}
}

func TestSLABreachesFlaggedOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Second)
	wd := h.leader(watchdog.Config{})
	ctx := context.Background()
	_, err := h.top.ConfigKV.Put(ctx, domain.SLAConfigKey, []byte(`{"default_hours":48,"thresholds_by_domain":{"notification":2}}`))
	require.NoError(t, err)
	now := h.clk.Now()
	late := newEntry("mailer", domain.DomainNotification, now.Add(-3*time.Hour))
	fresh := newEntry("mailer", domain.DomainNotification, now.Add(-time.Hour))
	underDefault := newEntry("payments", domain.DomainExternalService, now.Add(-30*time.Hour))
	overDefault := newEntry("payments", domain.DomainExternalService, now.Add(-49*time.Hour))
	for _, e := range []domain.DLQEntry{late, fresh, underDefault, overDefault} {
		require.NoError(t, h.store.InsertEntry(ctx, e))
	}

	require.NoError(t, wd.Tick(ctx))
	require.Equal(t, int64(2), wd.Stats().SLABreached)
	for _, e := range []domain.DLQEntry{late, overDefault} {
		got, err := h.store.Get(ctx, e.ID)
		require.NoError(t, err)
		require.Equal(t, now, got.SLABreachedAt.UTC())
	}
	ev := event(h, "baldur.event.dlq.mailer.sla_breached", func(e events.SLABreachedEvent) bool { return e.EntryID == late.ID })
	require.Equal(t, 2, ev.SLAHours)
	require.Equal(t, domain.DomainNotification, ev.Domain)
	ev = event(h, "baldur.event.dlq.payments.sla_breached", func(e events.SLABreachedEvent) bool { return e.EntryID == overDefault.ID })
	require.Equal(t, 48, ev.SLAHours)

	require.NoError(t, wd.Tick(ctx))
	require.Equal(t, int64(2), wd.Stats().SLABreached, "flagged once")

	h.clk.Advance(time.Hour) // fresh is now 2 h old
	require.NoError(t, wd.Tick(ctx))
	require.Equal(t, int64(3), wd.Stats().SLABreached)

	// An invalid value is counted and the defaults (24 h) apply.
	_, err = h.top.ConfigKV.Put(ctx, domain.SLAConfigKey, []byte(`{"default_hours":0}`))
	require.NoError(t, err)
	require.NoError(t, wd.Tick(ctx))
	require.Equal(t, int64(4), wd.Stats().SLABreached, "underDefault (31 h) breaches the default 24 h")
	require.Equal(t, int64(1), wd.Stats().SLAInvalid)
}

func TestRescueExpireAndPurge(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Second)
	wd := h.leader(watchdog.Config{Retention: time.Hour, Batch: 2})
	ctx := context.Background()
	now := h.clk.Now()

	// A replay whose lease expires with its entries still replaying.
	claimed := []domain.DLQEntry{newEntry("payments", domain.DomainCustom, now), newEntry("payments", domain.DomainCustom, now)}
	for _, e := range claimed {
		require.NoError(t, h.store.InsertEntry(ctx, e))
	}
	lease, err := h.store.AcquireLease(ctx, "payments", "replayer-1", 30*time.Second, now)
	require.NoError(t, err)
	got, err := h.store.ClaimBatch(ctx, "payments", lease.Token, 10, now)
	require.NoError(t, err)
	require.Len(t, got, 2)

	// Entries past expires_at (five, so expiry takes three batches of two).
	var expiring []domain.DLQEntry
	for range 5 {
		e := newEntry("orders", domain.DomainCustom, now)
		e.ExpiresAt = now.Add(time.Minute)
		require.NoError(t, h.store.InsertEntry(ctx, e))
		expiring = append(expiring, e)
	}

	require.NoError(t, wd.Tick(ctx))
	require.Zero(t, wd.Stats().Rescued, "the lease is alive")

	h.clk.Advance(time.Minute)
	require.NoError(t, wd.Tick(ctx))
	s := wd.Stats()
	require.Equal(t, int64(2), s.Rescued)
	require.Equal(t, int64(5), s.Expired)
	require.Zero(t, s.Purged, "expired entries are kept for the retention")
	for _, e := range claimed {
		got, err := h.store.Get(ctx, e.ID)
		require.NoError(t, err)
		require.Equal(t, domain.DLQPending, got.Status)
	}
	for _, e := range expiring {
		got, err := h.store.Get(ctx, e.ID)
		require.NoError(t, err)
		require.Equal(t, domain.DLQExpired, got.Status)
	}
	audit, err := h.store.ListAudit(ctx, "dlq:payments", 0, 10)
	require.NoError(t, err)
	require.Len(t, audit, 1)
	require.Equal(t, watchdog.AuditActionRescue, audit[0].Action)
	require.Equal(t, "watchdog:wd-1", audit[0].Actor)
	audit, err = h.store.ListAudit(ctx, "dlq:orders", 0, 10)
	require.NoError(t, err)
	require.Len(t, audit, 3, "one record per expiry batch")

	h.clk.Advance(time.Hour)
	require.NoError(t, wd.Tick(ctx))
	require.Zero(t, wd.Stats().Purged, "kept until the retention has passed")
	h.clk.Advance(time.Second)
	require.NoError(t, wd.Tick(ctx))
	require.Equal(t, int64(5), wd.Stats().Purged)
	for _, e := range expiring {
		_, err := h.store.Get(ctx, e.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	_, err = h.store.VerifyAuditChain(ctx, nil)
	require.NoError(t, err)
	d := wd.Stats().Duties
	for _, name := range []string{watchdog.DutyRescue, watchdog.DutyExpire, watchdog.DutyPurge, watchdog.DutySLA,
		watchdog.DutyRecoveryTimeout, watchdog.DutyManualExpired, watchdog.DutyOverrideExpired, watchdog.DutyStuckHalfOpen} {
		require.Equal(t, watchdog.DutyStats{Runs: 4}, d[name], name)
	}
}
