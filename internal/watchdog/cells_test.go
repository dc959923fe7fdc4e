package watchdog_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/topology"
	"github.com/baldurfleet/baldur/internal/watchdog"
)

// startAudit runs the replay-workers' audit consumer on the harness's store.
func (h *harness) startAudit() {
	t := h.t
	ctx := context.Background()
	cons, err := topology.EnsureReplay(ctx, h.js, h.top.Config)
	require.NoError(t, err)
	a := replay.NewAudit(cons.Audit, h.store, replay.AuditOptions{Logger: logger(t), Clock: h.clk.Now})
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Stop(ctx)
	})
}

// TestCellsReconcileArchivesOnlyOrphans resizes the ring from two cells to
// three and checks that only cell breakers whose cell lost their service are
// archived — by an archive command a real breaker-worker applies: the key
// deleted, one archived event, one audit record — never breakers without a
// configured cell.
func TestCellsReconcileArchivesOnlyOrphans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, 0)
	h.startBreakerWorker()
	h.startAudit()
	cells, err := watchdog.NewCells(h.top.ConfigKV, h.top.Breakers, h.js, "wd-1", logger(t))
	require.NoError(t, err)
	now := h.clk.Now()

	// No _cells key: nothing to do.
	require.NoError(t, cells.Run(ctx, now))

	two := domain.CellsConfig{Cells: []domain.Cell{{ID: "eu1", State: domain.CellActive}, {ID: "eu2", State: domain.CellActive}}}
	three := domain.CellsConfig{Cells: append(append([]domain.Cell(nil), two.Cells...), domain.Cell{ID: "eu3", State: domain.CellWarmup})}
	// Find a service that moves to eu3 when it joins, and one that stays.
	var moving, staying string
	for i := 0; moving == "" || staying == ""; i++ {
		svc := "svc" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		before, _ := two.Ring().Lookup(svc)
		after, _ := three.Ring().Lookup(svc)
		switch {
		case after == "eu3" && moving == "":
			moving = svc
		case after == before && staying == "":
			staying = svc
		}
	}
	ownerBefore, _ := two.Ring().Lookup(moving)
	stayOwner, _ := two.Ring().Lookup(staying)
	orphan := moving + "--" + ownerBefore
	kept := []string{staying + "--" + stayOwner, "plain", "odd--name", "legacy--ap1"}
	// Every breaker is written by the breaker-worker from an outcome report.
	for _, name := range append([]string{orphan}, kept...) {
		h.publish(events.MustOutcomeSubject(name), events.TypeOutcome, events.OutcomeReport{Successes: 1})
		h.breaker(name, func(b domain.Breaker) bool { return b.Window.Successes == 1 })
	}
	setCells := func(c domain.CellsConfig) {
		v, err := json.Marshal(c)
		require.NoError(t, err)
		_, err = h.top.ConfigKV.Put(ctx, domain.ConfigCellsKey, v)
		require.NoError(t, err)
	}
	setCells(two)
	require.NoError(t, cells.Run(ctx, now))
	require.Zero(t, cells.Archived(), "every cell breaker maps")

	setCells(three)
	res, err := cells.Reconcile(ctx, three, now)
	require.NoError(t, err)
	require.Equal(t, []string{orphan}, res.Archived)
	require.Empty(t, res.Errors)

	// The breaker-worker applies the command: the key goes, one archived
	// event, and the audit consumer records it.
	require.Eventually(t, func() bool {
		_, err := h.top.Breakers.Get(ctx, orphan)
		return err != nil
	}, 10*time.Second, 5*time.Millisecond)
	_, err = h.top.Breakers.Get(ctx, orphan)
	require.ErrorIs(t, err, jetstream.ErrKeyNotFound)
	subj, err := events.BreakerEventSubject(orphan, events.BreakerArchived)
	require.NoError(t, err)
	ev := event(h, subj, func(events.ArchivedEvent) bool { return true })
	require.Equal(t, ownerBefore, ev.Cell)
	require.Equal(t, "wd-1", ev.Actor)
	require.Equal(t, domain.TriggerCellUnmapped, ev.Trigger)
	require.Contains(t, ev.Reason, "no longer owns")
	require.EqualValues(t, 1, ev.Window.Successes, "the last state")

	var recs []domain.AuditRecord
	require.Eventually(t, func() bool {
		recs, err = h.store.ListAudit(ctx, "breaker:"+orphan, 0, 10)
		return err == nil && len(recs) > 0
	}, 10*time.Second, 10*time.Millisecond)
	require.Len(t, recs, 1)
	require.Equal(t, watchdog.AuditActionBreakerArchived, recs[0].Action)
	require.Equal(t, "wd-1", recs[0].Actor)
	require.Contains(t, recs[0].Reason, "no longer owns")

	for _, name := range kept {
		_, err := h.top.Breakers.Get(ctx, name)
		require.NoError(t, err, name)
	}

	// Run reconciles a changed config once; nothing is left to archive.
	require.NoError(t, cells.Run(ctx, now))
	require.NoError(t, cells.Run(ctx, now))
	require.EqualValues(t, 1, cells.Archived())

	// With no cell on the ring nothing is archived.
	_, err = cells.Reconcile(ctx, domain.CellsConfig{Cells: []domain.Cell{{ID: "eu1", State: domain.CellIsolated}}}, now)
	require.ErrorIs(t, err, domain.ErrInvalidCell)
}
