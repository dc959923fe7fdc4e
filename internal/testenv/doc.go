// Package testenv gives tests real infrastructure, started by package devstack:
// an embedded nats-server with JetStream (NATS, NATSCluster) and a fresh
// PostgreSQL database migrated to the latest schema (Postgres, PostgresURL,
// EmptyDatabase). Nothing is mocked.
//
// # PostgreSQL
//
// Each test binary uses one PostgreSQL server: the one named by
// BALDUR_TEST_DATABASE_URL when it is set (its user must be allowed to create
// databases; no local server is started), otherwise a throw-away cluster
// started from the local server binaries on first use (see package devstack
// for where they are looked for, and how root is handled). The schema is
// migrated once per binary into a template database, named after a hash of
// the migrations and built under an advisory lock so that binaries run in
// parallel by `go test` share it; each test then gets its own database copied
// from it, dropped when the test ends. Tests may therefore run in parallel and
// never see each other's rows.
//
// A package whose tests use PostgreSQL must stop the throw-away server when
// its tests are done, with a TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Without it the server still dies with the test binary (it gets a signal when
// its parent dies), but its directory is only removed by a later run.
//
// When no PostgreSQL can be had the test fails (never skips) with a message
// that says how to get one.
package testenv
