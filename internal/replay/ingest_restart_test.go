package replay_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/db"
	"github.com/baldurfleet/baldur/internal/devstack"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
)

// TestIngestSurvivesPostgresRestart stops a dedicated PostgreSQL while dead
// letters are being published and ingested, starts it again on the same
// directory and port, and checks that every dead letter arrives once.
func TestIngestSurvivesPostgresRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and restarts its own PostgreSQL")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// os.TempDir, not t.TempDir: the server may run as another user, who
	// must be able to reach the directory.
	parent, err := os.MkdirTemp("", "baldur-ingest-restart-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(parent, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	dir := filepath.Join(parent, "cluster")
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{Dir: dir, MaxConnections: 20})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })
	port := pg.Port()

	pool, err := pgxpool.New(ctx, pg.URL())
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	require.NoError(t, db.Migrate(ctx, conn.Conn()))
	conn.Release()

	n := testenv.NATS(t)
	ingestTopology(t, n.JS)
	counted := newIngestCounter(store.New(pool, store.WithAuditKey(testenv.AuditKey)))
	in := ingestStart(t, replay.IngestConfig{Batch: 100, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, InsertTimeout: 2 * time.Second},
		replay.IngestDeps{Store: counted, JS: n.JS, NodeID: "restart"})

	const before, during, after = 300, 300, 300
	ingestPublishMany(t, n.JS, "payments", before)
	counted.wait(t, before, 30*time.Second)

	require.NoError(t, pg.Stop(ctx))
	ingestPublishMany(t, n.JS, "payments", during)
	require.Eventually(t, func() bool { return in.Stats().Paused }, 30*time.Second, 10*time.Millisecond,
		"ingest notices that PostgreSQL is down and pauses")
	msgs, _, _ := ingestQueueDepth(t, n.JS)
	require.Equal(t, uint64(during), msgs, "nothing acked while PostgreSQL is down")

	pg, err = devstack.StartPostgres(ctx, devstack.PostgresOptions{Dir: dir, Port: port, MaxConnections: 20})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })
	ingestPublishMany(t, n.JS, "payments", after)
	counted.wait(t, before+during+after, 60*time.Second)

	var rows int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM dlq_entries`).Scan(&rows))
	require.Equal(t, before+during+after, rows, "every dead letter arrived, once")
	require.Eventually(t, func() bool {
		msgs, pending, _ := ingestQueueDepth(t, n.JS)
		return msgs == 0 && pending == 0
	}, 10*time.Second, 10*time.Millisecond)
	st := in.Stats()
	require.False(t, st.Paused)
	require.Positive(t, st.StoreErrors)
	t.Logf("ingest stats after the restart: %+v", st)
}
