package db

// MigrateFS is migrateFS for tests: an older binary is one with fewer
// migration files.
var MigrateFS = migrateFS
