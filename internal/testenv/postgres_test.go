package testenv_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/db"
	"github.com/baldurfleet/baldur/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestPostgresIsolation runs parallel tests that each write into a table of
// their own database and see only their own rows.
func TestPostgresIsolation(t *testing.T) {
	t.Parallel()
	for i := range 4 {
		t.Run(fmt.Sprintf("db%d", i), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			pool := testenv.Postgres(t)

			_, err := pool.Exec(ctx, `CREATE TABLE isolation_probe (owner int NOT NULL)`)
			require.NoError(t, err, "every test database starts without this table")
			for range i + 1 {
				_, err = pool.Exec(ctx, `INSERT INTO isolation_probe (owner) VALUES ($1)`, i)
				require.NoError(t, err)
			}
			var n, others int
			require.NoError(t, pool.QueryRow(ctx,
				`SELECT count(*), count(*) FILTER (WHERE owner <> $1) FROM isolation_probe`, i).Scan(&n, &others))
			require.Equal(t, i+1, n)
			require.Zero(t, others)
		})
	}
}

func TestPostgresIsMigrated(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, testenv.PostgresURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })

	current, latest, err := db.Version(ctx, conn)
	require.NoError(t, err)
	require.Positive(t, latest)
	require.Equal(t, latest, current)
}

func TestEmptyDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, testenv.EmptyDatabase(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })

	var tables int
	require.NoError(t, conn.QueryRow(ctx,
		`SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`).Scan(&tables))
	require.Zero(t, tables, "an empty database has no tables, not even tern's version table")

	require.NoError(t, db.Migrate(ctx, conn))
	current, latest, err := db.Version(ctx, conn)
	require.NoError(t, err)
	require.Equal(t, latest, current)
}

// TestPostgresRunsAsServerUser checks who the server runs as: as root it is
// the postgres OS user (PostgreSQL refuses root), otherwise the current user.
func TestPostgresRunsAsServerUser(t *testing.T) {
	t.Parallel()
	if os.Getenv(testenv.EnvTestDatabaseURL) != "" {
		t.Log("using an external server: nothing to check about the local one")
		return
	}
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, testenv.PostgresURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })

	var superuser string
	require.NoError(t, conn.QueryRow(ctx, `SELECT current_user`).Scan(&superuser))
	require.Equal(t, "postgres", superuser)

	var dataDir string
	require.NoError(t, conn.QueryRow(ctx, `SHOW data_directory`).Scan(&dataDir))
	fi, err := os.Stat(dataDir)
	require.NoError(t, err)
	owner := statUID(t, fi)
	if os.Geteuid() == 0 {
		require.NotZero(t, owner, "as root, the cluster belongs to the postgres user")
	} else {
		require.Equal(t, uint32(os.Geteuid()), owner)
	}
}

func TestCreateDatabaseIsFast(t *testing.T) {
	t.Parallel()
	testenv.PostgresURL(t) // warm: server and template
	begin := time.Now()
	testenv.PostgresURL(t)
	took := time.Since(begin)
	t.Logf("database from template in %s", took)
	require.Less(t, took, 5*time.Second)
}
