// Package db embeds Baldur's PostgreSQL schema and applies it.
//
// Migrations live in db/migrations as zero-padded, numbered files in the format
// of jackc/tern: the forward SQL, then a line "---- create above / drop below ----",
// then the SQL that undoes it. sqlc reads the same files (schema) and db/queries.
// Every binary that uses PostgreSQL calls Migrate at start; tern holds an advisory
// lock while it migrates, so concurrent starts are safe.
package db

import (
	"bufio"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// VersionTable is the table in which tern records the applied schema version.
const VersionTable = "baldur_schema_version"

// Migrations returns the embedded migration files, rooted at the migrations
// directory.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory exists
	}
	return sub
}

func newMigrator(ctx context.Context, conn *pgx.Conn, fsys fs.FS) (*migrate.Migrator, error) {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return nil, fmt.Errorf("db: prepare migrator: %w", err)
	}
	if err := m.LoadMigrations(fsys); err != nil {
		return nil, fmt.Errorf("db: load migrations: %w", err)
	}
	return m, nil
}

// Compatibility is what a migration means to the binaries that predate it.
type Compatibility string

// Compatibilities.
const (
	// Expand: the migration only adds; an older binary runs against it.
	Expand Compatibility = "expand"
	// Contract: the migration removes or changes what older binaries use.
	Contract Compatibility = "contract"
)

// compatMarker starts the line of a migration that declares its
// compatibility: "-- compatibility: expand".
const compatMarker = "-- compatibility: "

// ErrSchemaTooNew reports a schema newer than the binary with a migration
// the binary cannot run against.
var ErrSchemaTooNew = errors.New("db: the schema is newer than this binary")

// MigrationCompat is one migration's declared compatibility.
type MigrationCompat struct {
	Version       int32
	Name          string
	Compatibility Compatibility
}

// Compatibilities reads the compatibility every migration of fsys declares
// on a line "-- compatibility: expand|contract"; a migration without one is
// an error.
func Compatibilities(fsys fs.FS) ([]MigrationCompat, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	out := make([]MigrationCompat, 0, len(names))
	for _, name := range names {
		num, _, ok := strings.Cut(path.Base(name), "_")
		v, err := strconv.ParseInt(num, 10, 32)
		if !ok || err != nil {
			return nil, fmt.Errorf("db: migration %s: no version number", name)
		}
		f, err := fsys.Open(name)
		if err != nil {
			return nil, err
		}
		var c Compatibility
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), compatMarker); ok {
				c = Compatibility(strings.Fields(rest + " ")[0])
				break
			}
		}
		_ = f.Close()
		if c != Expand && c != Contract {
			return nil, fmt.Errorf("db: migration %s declares no compatibility (a line %q expand or contract)", name, compatMarker)
		}
		out = append(out, MigrationCompat{Version: int32(v), Name: name, Compatibility: c})
	}
	return out, nil
}

// Migrate brings the schema to the latest version the binary knows, and
// records the compatibility of every migration it knows. A schema newer than
// the binary (a rolling upgrade's newer worker migrated it, or a rollback)
// is left as it is and accepted when every migration above the binary's
// latest is recorded as expand; otherwise the error wraps ErrSchemaTooNew
// and names the first migration that is not.
func Migrate(ctx context.Context, conn *pgx.Conn) error {
	return migrateFS(ctx, conn, Migrations())
}

func migrateFS(ctx context.Context, conn *pgx.Conn, fsys fs.FS) error {
	compat, err := Compatibilities(fsys)
	if err != nil {
		return err
	}
	m, err := newMigrator(ctx, conn, fsys)
	if err != nil {
		return err
	}
	current, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return fmt.Errorf("db: read schema version: %w", err)
	}
	if latest := int32(len(m.Migrations)); current > latest {
		return checkNewer(ctx, conn, current, latest)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("db: migrate: %w", err)
	}
	for _, c := range compat {
		if _, err := conn.Exec(ctx, `INSERT INTO baldur_schema_compat (version, name, compatibility) VALUES ($1, $2, $3)
			ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, compatibility = EXCLUDED.compatibility`,
			c.Version, c.Name, string(c.Compatibility)); err != nil {
			return fmt.Errorf("db: record the compatibility of migration %s: %w", c.Name, err)
		}
	}
	return nil
}

// checkNewer accepts a schema at version current above latest, the last
// migration the binary knows, when every migration in between is recorded
// as expand.
func checkNewer(ctx context.Context, conn *pgx.Conn, current, latest int32) error {
	rows, err := conn.Query(ctx, `SELECT version, name, compatibility FROM baldur_schema_compat
		WHERE version > $1 AND version <= $2 ORDER BY version`, latest, current)
	if err != nil {
		return fmt.Errorf("%w: schema version %d, this binary knows up to %d, and the schema records no compatibility (%v): run a binary of version %d or later",
			ErrSchemaTooNew, current, latest, err, current)
	}
	recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MigrationCompat, error) {
		var c MigrationCompat
		var comp string
		err := r.Scan(&c.Version, &c.Name, &comp)
		c.Compatibility = Compatibility(comp)
		return c, err
	})
	if err != nil {
		return fmt.Errorf("db: read the schema's compatibility: %w", err)
	}
	next := latest + 1
	for _, c := range recs {
		if c.Version != next {
			break
		}
		if c.Compatibility != Expand {
			return fmt.Errorf("%w: schema version %d, this binary knows up to %d, and migration %s is %s (it changes what this binary uses): run a binary that knows version %d",
				ErrSchemaTooNew, current, latest, c.Name, c.Compatibility, current)
		}
		next++
	}
	if next <= current {
		return fmt.Errorf("%w: schema version %d, this binary knows up to %d, and migration %d records no compatibility: run a binary that knows version %d",
			ErrSchemaTooNew, current, latest, next, current)
	}
	return nil
}

// MigrateTo moves the schema up or down to version; 0 removes every table the
// migrations created.
func MigrateTo(ctx context.Context, conn *pgx.Conn, version int32) error {
	m, err := newMigrator(ctx, conn, Migrations())
	if err != nil {
		return err
	}
	if err := m.MigrateTo(ctx, version); err != nil {
		return fmt.Errorf("db: migrate to version %d: %w", version, err)
	}
	return nil
}

// Version reports the schema version recorded in the database and the latest
// version the embedded migrations provide.
func Version(ctx context.Context, conn *pgx.Conn) (current, latest int32, err error) {
	m, err := newMigrator(ctx, conn, Migrations())
	if err != nil {
		return 0, 0, err
	}
	current, err = m.GetCurrentVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("db: read schema version: %w", err)
	}
	return current, int32(len(m.Migrations)), nil
}
