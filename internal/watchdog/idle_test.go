package watchdog_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/topology"
	"github.com/baldurfleet/baldur/internal/watchdog"
)

const week = 7 * 24 * time.Hour

// startCappedBreakerWorker runs a real breaker-worker on the harness's
// clock with the fleet capped at max live breakers.
func (h *harness) startCappedBreakerWorker(max int) *breaker.Worker {
	t := h.t
	nc := h.nats.Connect(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	top, err := topology.Ensure(context.Background(), js, h.top.Config)
	require.NoError(t, err)
	w, err := breaker.New(js, breaker.Config{Topology: top, Node: "bw-1", Configs: h.view, Governance: h.view,
		Clock: h.clk.Now, Conn: nc, Logger: logger(t), MaxBreakers: max})
	require.NoError(t, err)
	require.NoError(t, w.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w
}

// TestArchiveIdle fills a fleet capped at three breakers, then lets time
// pass: the breaker without activity for the idle period is archived by a
// real breaker-worker applying the watchdog's archive command (key deleted,
// one archived event with trigger idle, one audit record), the one with a
// recent report and the open one are kept, and the room archival frees
// takes the name the cap had refused.
func TestArchiveIdle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, time.Second)
	bw := h.startCappedBreakerWorker(3)
	h.startAudit()
	wd := h.leader(watchdog.Config{IdleAfter: week})
	start := h.clk.Now()

	for _, svc := range []string{"quiet", "busy"} {
		h.publish(events.MustOutcomeSubject(svc), events.TypeOutcome, events.OutcomeReport{Successes: 1})
		h.breaker(svc, func(b domain.Breaker) bool { return b.Window.Successes == 1 })
	}
	h.trip("opened")
	for _, svc := range []string{"quiet", "busy", "opened"} {
		require.Eventually(t, func() bool { return wd.IndexedIdleSince(svc).Equal(start) }, 5*time.Second, time.Millisecond,
			"the watchdog's index sees %s", svc)
	}

	// At the cap a new name is refused.
	require.Eventually(t, func() bool { return h.view.Len() == 3 }, 5*time.Second, time.Millisecond)
	h.publish(events.MustOutcomeSubject("fresh"), events.TypeOutcome, events.OutcomeReport{Successes: 1})
	rej := event(h, "baldur.event.rejected.outcome", func(r events.Rejected) bool { return r.Code == breaker.CodeBreakerCap })
	require.Contains(t, rej.Reason, "fresh has no breaker")
	_, err := h.top.Breakers.Get(ctx, "fresh")
	require.ErrorIs(t, err, jetstream.ErrKeyNotFound)

	// busy reports again six days later; nothing is idle yet.
	h.clk.Advance(6 * 24 * time.Hour)
	h.publish(events.MustOutcomeSubject("busy"), events.TypeOutcome, events.OutcomeReport{Successes: 1})
	require.Eventually(t, func() bool { return wd.IndexedIdleSince("busy").Equal(h.clk.Now()) }, 5*time.Second, time.Millisecond)
	require.NoError(t, wd.Tick(ctx))
	require.Zero(t, wd.Stats().Commands[string(domain.TriggerIdle)])

	// A day and a minute later quiet has been idle for more than a week.
	h.clk.Advance(24*time.Hour + time.Minute)
	require.NoError(t, wd.Tick(ctx))
	require.EqualValues(t, 1, wd.Stats().Commands[string(domain.TriggerIdle)], "quiet only")
	require.Eventually(t, func() bool {
		_, err := h.top.Breakers.Get(ctx, "quiet")
		return err != nil
	}, 10*time.Second, 5*time.Millisecond, "the key is deleted")

	subj, err := events.BreakerEventSubject("quiet", events.BreakerArchived)
	require.NoError(t, err)
	ev := event(h, subj, func(events.ArchivedEvent) bool { return true })
	require.Equal(t, domain.TriggerIdle, ev.Trigger)
	require.Equal(t, "wd-1", ev.Actor)
	require.Empty(t, ev.Cell)
	require.Contains(t, ev.Reason, "no activity since "+start.Format(time.RFC3339))
	var recs []domain.AuditRecord
	require.Eventually(t, func() bool {
		recs, err = h.store.ListAudit(ctx, "breaker:quiet", 0, 10)
		return err == nil && len(recs) > 0
	}, 10*time.Second, 10*time.Millisecond)
	require.Len(t, recs, 1)
	require.Equal(t, watchdog.AuditActionBreakerArchived, recs[0].Action)

	for _, svc := range []string{"busy", "opened"} {
		_, err := h.top.Breakers.Get(ctx, svc)
		require.NoError(t, err, "%s is kept", svc)
	}
	require.EqualValues(t, 1, bw.Stats().Archived)

	// Archival freed room: the refused name gets its breaker now.
	require.Eventually(t, func() bool { return h.view.Len() == 2 }, 5*time.Second, time.Millisecond)
	h.publish(events.MustOutcomeSubject("fresh"), events.TypeOutcome, events.OutcomeReport{Successes: 1})
	h.breaker("fresh", func(b domain.Breaker) bool { return b.Window.Successes == 1 })
	require.EqualValues(t, 1, bw.Stats().BreakerCap)

	require.NoError(t, wd.Tick(ctx))
	require.EqualValues(t, 1, wd.Stats().Commands[string(domain.TriggerIdle)], "nothing else is idle")
}

// TestArchiveIdleOff checks that a negative IdleAfter turns the duty off
// and that an idle period out of range is refused.
func TestArchiveIdleOff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, time.Second)
	h.startBreakerWorker()
	wd := h.leader(watchdog.Config{IdleAfter: -1})
	h.publish(events.MustOutcomeSubject("quiet"), events.TypeOutcome, events.OutcomeReport{Successes: 1})
	h.breaker("quiet", func(b domain.Breaker) bool { return b.Window.Successes == 1 })
	require.Eventually(t, func() bool { return !wd.IndexedIdleSince("quiet").IsZero() }, 5*time.Second, time.Millisecond)
	h.clk.Advance(52 * week)
	require.NoError(t, wd.Tick(ctx))
	require.Zero(t, wd.Stats().Commands[string(domain.TriggerIdle)])
	_, ran := wd.Stats().Duties[watchdog.DutyArchiveIdle]
	require.False(t, ran, "no idle duty")

	for _, bad := range []time.Duration{time.Second, domain.MaxIdlePeriod + time.Hour} {
		err := watchdog.Config{Node: "wd", IdleAfter: bad}.WithDefaults().Validate()
		require.ErrorIs(t, err, watchdog.ErrInvalidConfig, bad)
	}
	require.NoError(t, watchdog.Config{Node: "wd"}.WithDefaults().Validate())
	require.Equal(t, watchdog.DefaultIdleAfter, watchdog.Config{}.WithDefaults().IdleAfter)
}
