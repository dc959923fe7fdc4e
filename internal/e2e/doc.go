// Package e2e holds the end-to-end tests and benchmarks of the breaker fleet:
// the SDK (package baldur) on several connections against a real
// breaker-worker (internal/breaker) and an embedded nats-server, single node
// and three-node cluster. It has no code of its own.
package e2e
