package db_test

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/db"
	"github.com/baldurfleet/baldur/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// relations lists the tables and sequences of the public schema, except
// tern's version table.
func relations(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), `
		SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'p')
		  AND c.relname NOT LIKE $1 || '%'
		ORDER BY c.relname`, db.VersionTable)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

func TestMigrationsUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, testenv.EmptyDatabase(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })

	want := []string{"audit_log", "baldur_schema_compat", "dlq_entries", "dlq_live_counts", "outcome_rollups", "replay_lease_fencing_token", "replay_leases"}

	require.NoError(t, db.Migrate(ctx, conn))
	cur, latest, err := db.Version(ctx, conn)
	require.NoError(t, err)
	require.Equal(t, latest, cur)
	require.Positive(t, latest)
	require.Equal(t, want, relations(t, conn))

	require.NoError(t, db.MigrateTo(ctx, conn, 0))
	cur, _, err = db.Version(ctx, conn)
	require.NoError(t, err)
	require.Zero(t, cur)
	require.Empty(t, relations(t, conn), "down to zero leaves no table or sequence behind")

	require.NoError(t, db.Migrate(ctx, conn))
	cur, latest, err = db.Version(ctx, conn)
	require.NoError(t, err)
	require.Equal(t, latest, cur)
	require.Equal(t, want, relations(t, conn))

	// Migrating an up-to-date schema is a no-op.
	require.NoError(t, db.Migrate(ctx, conn))
}

func TestEveryMigrationStepsDownAndUp(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, testenv.EmptyDatabase(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })

	require.NoError(t, db.Migrate(ctx, conn))
	_, latest, err := db.Version(ctx, conn)
	require.NoError(t, err)
	for v := latest - 1; v >= 0; v-- {
		require.NoError(t, db.MigrateTo(ctx, conn, v), "down to %d", v)
		require.NoError(t, db.MigrateTo(ctx, conn, v+1), "up again to %d", v+1)
		require.NoError(t, db.MigrateTo(ctx, conn, v), "down again to %d", v)
	}
	require.Empty(t, relations(t, conn))
}

// olderBinary returns the migrations of a binary that knows only the first n.
func olderBinary(t *testing.T, n int) fs.FS {
	t.Helper()
	compat, err := db.Compatibilities(db.Migrations())
	require.NoError(t, err)
	out := fstest.MapFS{}
	for _, c := range compat[:n] {
		b, err := fs.ReadFile(db.Migrations(), c.Name)
		require.NoError(t, err)
		out[c.Name] = &fstest.MapFile{Data: b}
	}
	return out
}

func TestEveryMigrationDeclaresItsCompatibility(t *testing.T) {
	t.Parallel()
	compat, err := db.Compatibilities(db.Migrations())
	require.NoError(t, err)
	for i, c := range compat {
		require.Equal(t, int32(i+1), c.Version, c.Name)
	}
	require.Equal(t, db.Contract, compat[0].Compatibility, "the first schema")
	_, err = db.Compatibilities(fstest.MapFS{"009_x.sql": {Data: []byte("CREATE TABLE x ();")}})
	require.ErrorContains(t, err, "declares no compatibility")
}

// TestAnOlderBinaryRunsAgainstAnExpandedSchema: a rolling upgrade (or a
// rollback) leaves workers one release behind the schema: they run when
// every migration above theirs is expand, and refuse naming the first one
// that is not.
func TestAnOlderBinaryRunsAgainstAnExpandedSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, testenv.EmptyDatabase(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	require.NoError(t, db.Migrate(ctx, conn))
	_, latest, err := db.Version(ctx, conn)
	require.NoError(t, err)
	older := olderBinary(t, int(latest)-2)

	require.NoError(t, db.MigrateFS(ctx, conn, older), "every migration above the older binary's is expand")
	cur, _, err := db.Version(ctx, conn)
	require.NoError(t, err)
	require.Equal(t, latest, cur, "the schema is left as it is")

	_, err = conn.Exec(ctx, `UPDATE baldur_schema_compat SET compatibility = 'contract' WHERE version = $1`, latest)
	require.NoError(t, err)
	err = db.MigrateFS(ctx, conn, older)
	require.ErrorIs(t, err, db.ErrSchemaTooNew)
	require.ErrorContains(t, err, "is contract")

	_, err = conn.Exec(ctx, `DELETE FROM baldur_schema_compat WHERE version = $1`, latest-1)
	require.NoError(t, err)
	err = db.MigrateFS(ctx, conn, older)
	require.ErrorIs(t, err, db.ErrSchemaTooNew)
	require.ErrorContains(t, err, "records no compatibility")

	require.NoError(t, db.Migrate(ctx, conn), "the current binary records it again")
	require.NoError(t, db.MigrateFS(ctx, conn, older))
}
