// Package devstack starts the real infrastructure Baldur runs on, inside the
// current machine: an embedded nats-server with JetStream (one node, or an
// N-node cluster on loopback) and a throw-away PostgreSQL cluster built from the
// locally installed server binaries.
//
// It is used by `baldur dev` and, through package testenv, by the tests. It
// imports nothing from package testing.
//
// # PostgreSQL binaries
//
// StartPostgres looks for initdb and postgres, in this order: the directory
// named by BALDUR_PG_BIN_DIR; the PATH; the highest version under
// /usr/lib/postgresql/*/bin (the Debian and Ubuntu layout of the
// "postgresql" package). When none is found it returns ErrNoPostgres, whose
// message says how to get one.
//
// # Running as root
//
// PostgreSQL refuses to run as root. When the current process is root,
// initdb and postgres run as the "postgres" OS user (which the server package
// creates): the cluster directory is created under os.TempDir() with mode
// 0755, handed to that user, and every parent directory must be traversable
// by it. As a normal user the same code runs without changing credentials.
//
// The postgres process gets SIGQUIT (immediate shutdown) when the process that
// started it dies, so a crashed test binary leaves no server behind; its
// temporary directory is removed by the next StartPostgres.
package devstack
