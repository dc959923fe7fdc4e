// Package db embeds Baldur's PostgreSQL schema and applies it.
//
// Migrations live in db/migrations as zero-padded, numbered files in the format
// of jackc/tern: the forward SQL, then a line "---- create above / drop below ----",
// then the SQL that undoes it. sqlc reads the same files (schema) and db/queries.
// Every binary that uses PostgreSQL calls Migrate at start; tern holds an advisory
// lock while it migrates, so concurrent starts are safe.
package db

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

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

func newMigrator(ctx context.Context, conn *pgx.Conn) (*migrate.Migrator, error) {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return nil, fmt.Errorf("db: prepare migrator: %w", err)
	}
	if err := m.LoadMigrations(Migrations()); err != nil {
		return nil, fmt.Errorf("db: load migrations: %w", err)
	}
	return m, nil
}

// Migrate brings the schema to the latest version.
func Migrate(ctx context.Context, conn *pgx.Conn) error {
	m, err := newMigrator(ctx, conn)
	if err != nil {
		return err
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("db: migrate: %w", err)
	}
	return nil
}

// MigrateTo moves the schema up or down to version; 0 removes every table the
// migrations created.
func MigrateTo(ctx context.Context, conn *pgx.Conn, version int32) error {
	m, err := newMigrator(ctx, conn)
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
	m, err := newMigrator(ctx, conn)
	if err != nil {
		return 0, 0, err
	}
	current, err = m.GetCurrentVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("db: read schema version: %w", err)
	}
	return current, int32(len(m.Migrations)), nil
}
