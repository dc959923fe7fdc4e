package breaker_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
)

const week = 7 * 24 * time.Hour

func idleArchive() events.BreakerCommand {
	return events.BreakerCommand{Action: domain.ActionArchive, Trigger: domain.TriggerIdle, TTL: domain.Duration(week),
		Actor: "wd-1", Reason: "no activity for a week"}
}

// TestWorkerArchiveIdle sends archive commands with trigger idle to a real
// worker: a report folded before the command (stream order) makes the
// breaker active again and the command a no-op; once idle for the period,
// a breaker of any name is deleted with one archived event.
func TestWorkerArchiveIdle(t *testing.T) {
	t.Parallel()
	f := setup(t, 2, 0)
	clk := newClock()
	w, _ := f.startWorker(t, "w1", clk.Now)
	ctx := context.Background()
	const svc = "plain"
	report(t, f.js, svc, "node-a", 1, 0)
	state(t, f, svc, calls(1))

	clk.Advance(week + time.Hour)
	report(t, f.js, svc, "node-a", 1, 0)
	command(t, f.js, svc, idleArchive())
	b := state(t, f, svc, func(b domain.Breaker) bool { return b.LastSeq >= 3 })
	require.Equal(t, clk.Now(), b.ActiveAt, "the report in between made it active")
	require.EqualValues(t, 1, w.Stats().NoOps, "the archive found it active: a no-op")
	require.Zero(t, w.Stats().Archived)

	clk.Advance(week)
	command(t, f.js, svc, idleArchive())
	require.Eventually(t, func() bool {
		_, err := f.top.Breakers.Get(ctx, svc)
		return err != nil
	}, 10*time.Second, 5*time.Millisecond, "the key is deleted")
	_, err := f.top.Breakers.Get(ctx, svc)
	require.ErrorIs(t, err, jetstream.ErrKeyNotFound)

	subj, err := events.BreakerEventSubject(svc, events.BreakerArchived)
	require.NoError(t, err)
	msgs := eventsOf(t, f.js, subj, 1)
	require.Len(t, msgs, 1, "one archived event")
	m, err := events.Decode(msgs[0].Subject(), msgs[0].Headers(), msgs[0].Data())
	require.NoError(t, err)
	ev, ok := m.Payload.(events.ArchivedEvent)
	require.True(t, ok)
	require.Equal(t, events.ArchivedEvent{Service: svc, State: domain.StateClosed, Mode: domain.ModeAuto,
		Trigger: domain.TriggerIdle, Actor: "wd-1", Reason: "no activity for a week", At: clk.Now(),
		Window: ev.Window}, ev)
	require.EqualValues(t, 1, w.Stats().Archived)
}
