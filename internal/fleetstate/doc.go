// Package fleetstate is a node's local copy of the fleet's shared state: the
// breakers of baldur_breakers, the layered configs of baldur_config and the
// governance keys of baldur_governance, kept up to date by KV watches.
//
// # The local-read model
//
// Every node (service SDK, breaker-worker, replay-worker, CLI) watches the
// buckets instead of asking for state, so "may I call payments?" is a memory
// read, never a round trip (DESIGN §1, §7.5). Watch returns once the initial
// values of every watched bucket are in; after that a breaker written by any
// worker reaches the view within one KV watch delivery.
//
// Per service the view keeps a Handle holding an atomic pointer to a compact
// Snapshot (state, mode, generation, recovery_at, the window's totals and the
// KV revision) — never the full breaker with its window buckets — so memory
// stays small with 100k breakers. Each update decodes only those fields,
// builds a new Snapshot and swaps it into the handle: readers see either the
// old or the new snapshot, with no lock and no allocation (Handle.Load,
// Snapshot.Allows). A service without breaker state, or whose breaker was
// deleted, has a nil snapshot and is closed.
//
// The map from service to handle is copy-on-write: reads are one atomic load
// and one map lookup; new services wait in a small mutex-guarded map (readable
// at once) and are promoted into a fresh copy of the read map in batches. A
// handle, once created, stays the service's handle for the life of the view,
// so callers may resolve it once (View.Handle) and load it on every call.
//
// Configs are resolved when they change (built-in defaults, then
// "_defaults", then the service's object; domain.ResolveConfig) and cached
// per service; a service without its own object shares the resolution of
// "_defaults". A value that does not resolve to a valid config, or a
// governance value that does not decode or validate, is reported
// (WithRejected) and ignored: the last valid value stays in force.
//
// OnChange listeners run on the watch goroutine after every breaker update:
// the SDK wakes waiters with them, the replay-worker watches for CLOSED
// breakers, tests measure propagation.
package fleetstate
