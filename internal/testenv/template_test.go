package testenv

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTemplateBuiltOnceUnderLock has several harnesses (standing in for test
// binaries run in parallel by go test) build the same template at once: all
// succeed, and the template exists once, complete, without a leftover build.
func TestTemplateBuiltOnceUnderLock(t *testing.T) {
	t.Parallel()
	shared := harness(t)
	name := "baldur_tmpl_locktest_" + randomID()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
		defer cancel()
		_, _ = shared.admin.Exec(ctx, "ALTER DATABASE "+ident(name)+" WITH IS_TEMPLATE false")
		_, _ = shared.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)")
	})

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		h := &pgHarness{baseURL: shared.baseURL, admin: shared.admin, template: name}
		wg.Go(func() { errs[i] = h.ensureTemplate(ctx) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}

	var templates, builds int
	require.NoError(t, shared.admin.QueryRow(ctx,
		`SELECT count(*) FILTER (WHERE datname = $1 AND datistemplate AND NOT datallowconn),
		        count(*) FILTER (WHERE datname = $1 || '_build')
		   FROM pg_database`, name).Scan(&templates, &builds))
	require.Equal(t, 1, templates)
	require.Zero(t, builds)

	// A database made from it is migrated.
	url := shared.createDatabase(t, name)
	require.Contains(t, url, "baldur_t_"+shared.runID)
}

func TestDatabaseURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ base, want string }{
		{"postgres://u:p@h:5432/app?sslmode=disable", "postgres://u:p@h:5432/x?sslmode=disable"},
		{"postgresql://h/", "postgresql://h/x"},
		{"host=h user=u dbname=app", "host=h user=u dbname=app dbname=x"},
	} {
		h := &pgHarness{baseURL: tc.base}
		require.Equal(t, tc.want, h.databaseURL("x"))
	}
}

func TestTemplateNameFollowsMigrations(t *testing.T) {
	t.Parallel()
	a, err := templateName()
	require.NoError(t, err)
	b, err := templateName()
	require.NoError(t, err)
	require.Equal(t, a, b)
	require.Regexp(t, `^baldur_tmpl_\d+_[0-9a-f]{16}$`, a)
}

func TestIdentRefusesOddNames(t *testing.T) {
	t.Parallel()
	require.Equal(t, `"baldur_t_1"`, ident("baldur_t_1"))
	require.Panics(t, func() { ident(`x"; DROP DATABASE y; --`) })
}
