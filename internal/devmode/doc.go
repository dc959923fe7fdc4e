// Package devmode is `baldur dev`: the whole fleet in one process for a
// laptop. Start runs an embedded nats-server with JetStream, PostgreSQL (the
// one named by Config.DatabaseURL, or a local cluster started from the
// installed server binaries), the migrations, the topology, a
// breaker-worker, a replay-worker, the watchdog (with a short tick) and the
// admin API with the dashboard.
//
// With Config.Demo it also runs a demo (see Demo): a simulated flaky
// "payments" dependency, a few SDK clients that call it through Execute with
// a dead-letter fallback and serve replays with HandleReplay, and a narrator
// that tells the story — failures rise, the breaker opens fleet-wide, calls
// fail fast and dead letters pile up, the dependency recovers, half-open
// probes close the breaker and the backlog replays and drains to zero.
//
// Data is kept under Config.DataDir (".baldur" by default: nats/ and pg/)
// unless Config.Ephemeral, which uses temporary directories removed at Stop.
// See docs/dev.md.
package devmode
