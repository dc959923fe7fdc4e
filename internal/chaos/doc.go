// Package chaos is Baldur's fault-injection suite (issue 9): seeded,
// repeatable scenarios on a three-node embedded NATS cluster, a real
// PostgreSQL and in-process workers that the harness kills, cuts off, slows
// down or restarts while load runs. Each scenario ends with its invariants
// checked and a one-line summary:
//
//	scenario=<name> seed=<seed> faults=<n> messages=<n> entries=<n> violations=0
//
// Everything but this file is built only with the build tag chaos, so that
// `make test` leaves the suite out; `make chaos` runs it:
//
//	make chaos                         # a fresh seed, printed
//	BALDUR_CHAOS_SEED=42 make chaos    # repeat a run
//	go test -race -tags chaos -run TestChaosWorkerCrashes ./internal/chaos -args -seed=42
//
// The harness (Harness, Link, the worker wrappers, the load generators and
// the invariant checkers) is exported within the package's chaos build for
// the scenarios; see harness.go.
package chaos
