package watchdog_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
	"github.com/baldurfleet/baldur/internal/watchdog"
)

// TestCellsReconcileArchivesOnlyOrphans resizes the ring from two cells to
// three and checks that only cell breakers whose cell lost their service are
// archived (audited, key purged), never breakers without a configured cell.
func TestCellsReconcileArchivesOnlyOrphans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.NATS(t)
	top, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 2, Storage: jetstream.MemoryStorage})
	require.NoError(t, err)
	st := store.New(testenv.Postgres(t))
	cells, err := watchdog.NewCells(top.ConfigKV, top.Breakers, st, "wd-1", nil)
	require.NoError(t, err)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

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
	put := func(name string) {
		_, err := top.Breakers.Put(ctx, name, []byte(`{"service":"`+name+`","state":"closed","mode":"auto"}`))
		require.NoError(t, err)
	}
	ownerBefore, _ := two.Ring().Lookup(moving)
	stayOwner, _ := two.Ring().Lookup(staying)
	for _, name := range []string{moving + "--" + ownerBefore, staying + "--" + stayOwner, "plain", "odd--name", "legacy--ap1"} {
		put(name)
	}
	setCells := func(c domain.CellsConfig) {
		v, err := jsonOf(c)
		require.NoError(t, err)
		_, err = top.ConfigKV.Put(ctx, domain.ConfigCellsKey, v)
		require.NoError(t, err)
	}
	setCells(two)
	require.NoError(t, cells.Run(ctx, now))
	require.Zero(t, cells.Archived(), "every cell breaker maps")

	setCells(three)
	res, err := cells.Reconcile(ctx, three, now)
	require.NoError(t, err)
	require.Equal(t, []string{moving + "--" + ownerBefore}, res.Archived)
	require.Empty(t, res.Errors)
	_, err = top.Breakers.Get(ctx, moving+"--"+ownerBefore)
	require.ErrorIs(t, err, jetstream.ErrKeyNotFound)
	for _, kept := range []string{staying + "--" + stayOwner, "plain", "odd--name", "legacy--ap1"} {
		_, err := top.Breakers.Get(ctx, kept)
		require.NoError(t, err, kept)
	}
	recs, err := st.ListAudit(ctx, "breaker:"+moving+"--"+ownerBefore, 0, 10)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, watchdog.AuditActionBreakerArchived, recs[0].Action)
	require.Contains(t, recs[0].Reason, "no longer owns")

	// Run reconciles a changed config once; nothing is left to archive.
	require.NoError(t, cells.Run(ctx, now))
	require.NoError(t, cells.Run(ctx, now))
	require.EqualValues(t, 1, cells.Archived())

	// With no cell on the ring nothing is archived.
	_, err = cells.Reconcile(ctx, domain.CellsConfig{Cells: []domain.Cell{{ID: "eu1", State: domain.CellIsolated}}}, now)
	require.ErrorIs(t, err, domain.ErrInvalidCell)
}

func jsonOf(v any) ([]byte, error) { return json.Marshal(v) }
