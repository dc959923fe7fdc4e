package devstack

import "errors"

// ErrNoPostgres is returned when no PostgreSQL server binaries can be found.
var ErrNoPostgres = errors.New("devstack: no PostgreSQL server binaries (initdb, postgres) found on PATH, " +
	"under /usr/lib/postgresql/*/bin or in BALDUR_PG_BIN_DIR: install the PostgreSQL server package " +
	"(Debian/Ubuntu: apt-get install -y postgresql) or set BALDUR_TEST_DATABASE_URL to a database " +
	"the tests may create databases in")

// ErrNoPostgresUser is returned when the process runs as root and there is no
// "postgres" OS user to run the PostgreSQL server as.
var ErrNoPostgresUser = errors.New(`devstack: running as root, PostgreSQL refuses to run as root ` +
	`and there is no "postgres" OS user to run it as: create one (useradd --system postgres), ` +
	`run as a normal user, or set BALDUR_TEST_DATABASE_URL`)

// ErrPostgresStart is returned when the PostgreSQL server does not start or
// does not accept connections in time; the wrapping error carries the tail of
// the server log.
var ErrPostgresStart = errors.New("devstack: PostgreSQL did not start")

// ErrNATSNotReady is returned when an embedded nats-server does not accept
// connections, or a cluster does not form, in time.
var ErrNATSNotReady = errors.New("devstack: nats-server not ready")

// ErrNodeIndex is returned for a cluster node index out of range.
var ErrNodeIndex = errors.New("devstack: no such cluster node")
