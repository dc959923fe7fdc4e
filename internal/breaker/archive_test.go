package breaker_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
)

func archiveCommand(reason string) events.BreakerCommand {
	return events.BreakerCommand{Action: domain.ActionArchive, Trigger: domain.TriggerCellUnmapped,
		Actor: "wd-1", Reason: reason}
}

// TestWorkerArchive sends archive commands to a real worker: a cell breaker
// is deleted by compare-and-set and one archived event carries its last
// state; a second archive finds no key and publishes nothing; inputs after
// it start a new breaker; a breaker without a cell is never archived.
func TestWorkerArchive(t *testing.T) {
	t.Parallel()
	f := setup(t, 2, 0)
	clk := newClock()
	w, _ := f.startWorker(t, "w1", clk.Now)
	ctx := context.Background()

	t.Run("cell breaker", func(t *testing.T) {
		t.Parallel()
		const svc = "payments--eu2"
		report(t, f.js, svc, "node-a", 0, 10)
		opened := state(t, f, svc, func(b domain.Breaker) bool { return b.State == domain.StateOpen })

		command(t, f.js, svc, archiveCommand("cell eu2 no longer owns payments (owner eu3)"))
		require.Eventually(t, func() bool {
			_, err := f.top.Breakers.Get(ctx, svc)
			return err != nil
		}, 10*time.Second, 5*time.Millisecond, "the key is deleted")
		_, err := f.top.Breakers.Get(ctx, svc)
		require.ErrorIs(t, err, jetstream.ErrKeyNotFound)

		// A second archive (a new ce-id) finds no key; the report after it
		// starts a new breaker, which shows that both were folded.
		command(t, f.js, svc, archiveCommand("again"))
		report(t, f.js, svc, "node-a", 1, 0)
		fresh := state(t, f, svc, calls(1))
		require.Zero(t, fresh.Generation, "a new breaker")
		require.Equal(t, domain.StateClosed, fresh.State)

		subj, err := events.BreakerEventSubject(svc, events.BreakerArchived)
		require.NoError(t, err)
		msgs := eventsOf(t, f.js, subj, 1)
		require.Len(t, msgs, 1, "one archived event")
		m, err := events.Decode(msgs[0].Subject(), msgs[0].Headers(), msgs[0].Data())
		require.NoError(t, err)
		require.Equal(t, events.TypeBreakerArchived, m.Envelope.Type)
		require.Equal(t, svc+".1.archived", msgs[0].Headers().Get(jetstream.MsgIDHeader))
		ev, ok := m.Payload.(events.ArchivedEvent)
		require.True(t, ok)
		require.Equal(t, events.ArchivedEvent{Service: svc, Cell: "eu2", State: domain.StateOpen, Mode: domain.ModeAuto,
			Generation: opened.Generation, Trigger: domain.TriggerCellUnmapped, Actor: "wd-1",
			Reason: "cell eu2 no longer owns payments (owner eu3)", At: clk.Now(), Window: opened.Window.WindowStats}, ev)
		require.EqualValues(t, 1, opened.Generation, "archiving raised no generation")

		filter, err := events.BreakerEventFilter(svc)
		require.NoError(t, err)
		require.Len(t, eventsOf(t, f.js, filter, 2), 2, "the opened transition and the archived event, nothing else")
	})

	t.Run("breaker without a cell", func(t *testing.T) {
		t.Parallel()
		const svc = "plain"
		report(t, f.js, svc, "node-a", 1, 0)
		state(t, f, svc, calls(1))
		id := command(t, f.js, svc, archiveCommand("not a cell breaker"))
		rejected := eventsOf(t, f.js, "baldur.event.rejected.control", 1)
		var found bool
		for _, m := range rejected {
			r, err := events.DecodeRejected(m.Data())
			require.NoError(t, err)
			if r.CEID == id {
				found = true
				require.Equal(t, breaker.CodeInvalidCommand, r.Code)
				require.Contains(t, r.Reason, "not a cell-scoped breaker")
			}
		}
		require.True(t, found, "the refusal is published")
		_, err := f.top.Breakers.Get(ctx, svc)
		require.NoError(t, err, "the key is kept")
		subj, err := events.BreakerEventSubject(svc, events.BreakerArchived)
		require.NoError(t, err)
		require.Empty(t, eventsOf(t, f.js, subj, 0), "no archived event")
	})

	t.Cleanup(func() { require.EqualValues(t, 1, w.Stats().Archived) })
}

// TestStateStoreDelete checks the compare-and-set of Delete.
func TestStateStoreDelete(t *testing.T) {
	t.Parallel()
	f := setup(t, 1, 0)
	ctx := context.Background()
	st := breaker.NewStateStore(f.top.Breakers, f.js, "test", nil)
	rev, err := f.top.Breakers.Put(ctx, "orders--ap1", []byte(`{"service":"orders--ap1","state":"closed","mode":"auto"}`))
	require.NoError(t, err)
	_, err = f.top.Breakers.Put(ctx, "orders--ap1", []byte(`{"service":"orders--ap1","state":"open","mode":"auto"}`))
	require.NoError(t, err)

	err = st.Delete(ctx, "orders--ap1", rev)
	require.ErrorIs(t, err, breaker.ErrConflict, "a stale revision")
	require.ErrorIs(t, err, jetstream.ErrKeyRevisionMismatch)
	require.ErrorIs(t, st.Delete(ctx, "orders--ap1", 0), breaker.ErrConflict, "no blind delete")

	e, err := f.top.Breakers.Get(ctx, "orders--ap1")
	require.NoError(t, err)
	require.NoError(t, st.Delete(ctx, "orders--ap1", e.Revision()))
	_, err = f.top.Breakers.Get(ctx, "orders--ap1")
	require.ErrorIs(t, err, jetstream.ErrKeyNotFound)
}
