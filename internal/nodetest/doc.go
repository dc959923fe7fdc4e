// Package nodetest runs the Node.js example service (examples/node) against a
// real fleet: an embedded nats-server with the topology, a breaker-worker and
// a replay-worker on PostgreSQL. It proves that a service written with the
// `nats` npm package and nothing of Baldur's code speaks the wire contract of
// docs/contract.md: its outcome reports are folded, its dead letter is
// ingested, and the replay reaches its handler. It has no code of its own.
//
// The test needs Node.js 18 or newer and npm on PATH; it installs the
// example's locked dependencies with `npm ci` when they are missing or stale,
// and fails (never skips) saying how to get what is missing.
package nodetest
