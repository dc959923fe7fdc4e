package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baldurfleet/baldur/db"
	"github.com/baldurfleet/baldur/internal/devstack"
)

// EnvTestDatabaseURL names the environment variable that points the tests at
// an existing PostgreSQL server instead of a throw-away local one. Its user
// must be allowed to create databases.
const EnvTestDatabaseURL = "BALDUR_TEST_DATABASE_URL"

// templateLockKey is the advisory lock under which template databases are
// built, so that test binaries running in parallel build each one once.
const templateLockKey int64 = 0x62616c6475720001

// pgTimeout bounds each administrative statement of the harness.
const pgTimeout = 60 * time.Second

// pgHarness is the PostgreSQL server of one test binary.
type pgHarness struct {
	server   *devstack.Postgres // nil when EnvTestDatabaseURL is used
	baseURL  string
	admin    *pgxpool.Pool
	template string
	runID    string
	seq      atomic.Uint64
	started  time.Duration
}

var (
	pgOnce sync.Once
	pg     *pgHarness
	pgErr  error
)

// harness returns this binary's PostgreSQL, starting it on first use.
func harness(t testing.TB) *pgHarness {
	t.Helper()
	first := false
	pgOnce.Do(func() {
		first = true
		pg, pgErr = startHarness()
	})
	if pgErr != nil {
		t.Fatal(pgErr)
	}
	if first {
		if pg.server != nil {
			t.Logf("testenv: started PostgreSQL in %s (%s, log %s) and built template %s",
				pg.started.Round(time.Millisecond), pg.server.URL(), pg.server.LogPath(), pg.template)
		} else {
			t.Logf("testenv: using %s=%s, template %s ready in %s",
				EnvTestDatabaseURL, redact(pg.baseURL), pg.template, pg.started.Round(time.Millisecond))
		}
	}
	return pg
}

func startHarness() (*pgHarness, error) {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*pgTimeout)
	defer cancel()

	h := &pgHarness{baseURL: os.Getenv(EnvTestDatabaseURL), runID: randomID()}
	if h.baseURL == "" {
		srv, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{})
		if err != nil {
			return nil, fmt.Errorf("testenv: %w", err)
		}
		h.server, h.baseURL = srv, srv.URL()
	}
	cfg, err := pgxpool.ParseConfig(h.baseURL)
	if err != nil {
		h.close()
		return nil, fmt.Errorf("testenv: parse database URL: %w", err)
	}
	cfg.MaxConns = 4
	if h.admin, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		h.close()
		return nil, fmt.Errorf("testenv: connect to PostgreSQL: %w", err)
	}
	if h.template, err = templateName(); err != nil {
		h.close()
		return nil, err
	}
	if err := h.ensureTemplate(ctx); err != nil {
		h.close()
		return nil, err
	}
	h.started = time.Since(begin)
	return h, nil
}

// templateName names the template database after the embedded migrations:
// their number and a hash of their names and contents. A change to any
// migration yields a new template, and binaries built from the same
// migrations share one.
func templateName() (string, error) {
	hash := sha256.New()
	count := 0
	err := fs.WalkDir(db.Migrations(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".sql") {
			return err
		}
		body, err := fs.ReadFile(db.Migrations(), path)
		if err != nil {
			return err
		}
		count++
		fmt.Fprintf(hash, "%s\x00%d\x00", path, len(body))
		hash.Write(body)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("testenv: read migrations: %w", err)
	}
	return fmt.Sprintf("baldur_tmpl_%d_%s", count, hex.EncodeToString(hash.Sum(nil))[:16]), nil
}

// ensureTemplate creates the migrated template database unless it exists. It
// builds under a temporary name and renames when done, all under an advisory
// lock, so a template that exists is complete.
func (h *pgHarness) ensureTemplate(ctx context.Context) error {
	conn, err := h.admin.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("testenv: connect to PostgreSQL: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return fmt.Errorf("testenv: take template lock: %w", err)
	}
	defer func() {
		unlockCtx, cancel := context.WithTimeout(context.Background(), pgTimeout)
		defer cancel()
		_, _ = conn.Exec(unlockCtx, "SELECT pg_advisory_unlock($1)", templateLockKey)
	}()

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", h.template).Scan(&exists); err != nil {
		return fmt.Errorf("testenv: look up template %s: %w", h.template, err)
	}
	if exists {
		return nil
	}
	building := h.template + "_build"
	for _, stmt := range []string{
		"DROP DATABASE IF EXISTS " + ident(building) + " WITH (FORCE)",
		"CREATE DATABASE " + ident(building) + " TEMPLATE template0",
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("testenv: prepare template %s: %w", h.template, err)
		}
	}
	if err := migrate(ctx, h.databaseURL(building)); err != nil {
		return fmt.Errorf("testenv: build template %s: %w", h.template, err)
	}
	for _, stmt := range []string{
		"ALTER DATABASE " + ident(building) + " RENAME TO " + ident(h.template),
		"ALTER DATABASE " + ident(h.template) + " WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("testenv: finish template %s: %w", h.template, err)
		}
	}
	return nil
}

func migrate(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return db.Migrate(ctx, conn)
}

// createDatabase creates a database from template, dropped (WITH (FORCE)) when
// the test ends, and returns its URL.
func (h *pgHarness) createDatabase(t testing.TB, template string) string {
	t.Helper()
	name := fmt.Sprintf("baldur_t_%s_%d", h.runID, h.seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	if _, err := h.admin.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(template)); err != nil {
		t.Fatalf("testenv: create database %s from %s: %v", name, template, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
		defer cancel()
		if _, err := h.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	return h.databaseURL(name)
}

// databaseURL is the harness URL with the database replaced by name. It keeps
// every other part of a URL or keyword/value connection string.
func (h *pgHarness) databaseURL(name string) string {
	if strings.HasPrefix(h.baseURL, "postgres://") || strings.HasPrefix(h.baseURL, "postgresql://") {
		u, err := url.Parse(h.baseURL)
		if err == nil {
			u.Path, u.RawPath = "/"+name, ""
			return u.String()
		}
	}
	return h.baseURL + " dbname=" + name // a later keyword wins
}

func (h *pgHarness) close() {
	if h.admin != nil {
		h.admin.Close()
	}
	if h.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
		defer cancel()
		if err := h.server.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "testenv:", err)
		}
	}
}

// Postgres returns a pool on a fresh database migrated to the latest schema.
// The pool is closed and the database dropped when the test ends.
func Postgres(t testing.TB) *pgxpool.Pool {
	t.Helper()
	dbURL := PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatalf("testenv: connect to test database: %v", err)
	}
	t.Cleanup(pool.Close) // runs before the drop registered by PostgresURL
	return pool
}

// PostgresURL creates a fresh database migrated to the latest schema and
// returns its connection URL, for tests that open their own connections. The
// database is dropped when the test ends, closing any connection still open.
func PostgresURL(t testing.TB) string {
	t.Helper()
	h := harness(t)
	return h.createDatabase(t, h.template)
}

// EmptyDatabase creates a fresh database with no migrations applied (a copy
// of template0) and returns its connection URL; it is dropped when the test
// ends. It is meant for testing the migrations themselves.
func EmptyDatabase(t testing.TB) string {
	t.Helper()
	return harness(t).createDatabase(t, "template0")
}

// Main runs the tests of a package that uses PostgreSQL, then stops the
// throw-away server the harness started (if any), and exits with the tests'
// status. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if pg != nil {
		pg.close()
	}
	os.Exit(code)
}

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// ident quotes a database name made by the harness.
func ident(name string) string {
	if !identRE.MatchString(name) {
		panic(errors.New("testenv: unexpected database name " + name))
	}
	return `"` + name + `"`
}

func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// redact hides a password in a database URL for logs.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return s
}
