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
// creates), and the cluster directory is handed to that user (mode 0755).
// That user must be able to traverse every parent directory, which a private
// directory such as root's 0700 home forbids. A temporary cluster is then
// made under /tmp instead of os.TempDir(); a kept one (PostgresOptions.Dir,
// as `baldur dev` asks for under .baldur/pg) is kept under
// PostgresOptions.Fallback (/var/lib/baldur/pg) in a directory named after
// a hash of Dir, and Dir becomes a symbolic link to it: every start of the
// same Dir finds the same data, and deleting Dir starts over. Data found in
// an unreachable Dir itself is never moved; the error names the command
// that moves it aside. As a normal user the same code runs without changing
// credentials and keeps the cluster where it was asked.
//
// The postgres process gets SIGQUIT (immediate shutdown) when the process that
// started it dies, so a crashed test binary leaves no server behind; its
// temporary directory is removed by the next StartPostgres.
package devstack
