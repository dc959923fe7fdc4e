// Package worker is the start-up the worker binaries (cmd/breaker-worker,
// cmd/replay-worker, cmd/watchdog) and `baldur dev` (internal/devmode) share.
//
// Open opens what the roles a process runs need, in this order: telemetry
// (telemetry.Setup), the NATS connection (process.Config.Connect), PostgreSQL
// migrated to the latest schema with the query tracer (replay-worker and
// watchdog only), the topology (topology.Ensure, plus EnsureReplay and
// EnsureWatchdog for those roles) and the fleet-state view (fleetstate.Watch,
// which publishes refused values as rejected events when the process runs a
// breaker-worker). Resources.Close undoes it in reverse.
//
// StartBreaker, StartReplay and StartWatchdog start a role on opened
// Resources and return the running role: its readiness checks (Checks) and
// a graceful Stop. Resources.ServeHealth serves /healthz, /readyz and
// /metrics on the process's --http-addr, and Resources.Health returns the
// same handler for a process that mounts it next to others.
//
// A worker binary is then its flags and one call of Run, which does the rest:
// Open, start the role, serve health, wait for the signal, Stop the role,
// Close. ExitCode turns Run's error into the binary's one-line message and
// exit code (Usage marks an error of the command line). The role packages
// (internal/breaker, internal/replay, internal/watchdog) know nothing of
// processes: this package is their only wiring.
package worker
