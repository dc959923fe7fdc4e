// Package baldur is the SDK that services embed to take part in a Baldur fleet:
// it answers "may I call this dependency?" from a local copy of the fleet's
// breaker state, reports call outcomes, submits dead letters and serves replays.
//
// The wire contract it speaks is described in internal/events and docs/contract.md;
// services in other languages publish the same JSON.
//
// # Use
//
// Connect over a NATS connection; it returns once the breakers and configs
// of the fleet are loaded. Then, per call:
//
//	if client.Allow("payments") {        // a memory read
//		start := time.Now()
//		err := charge(ctx)
//		client.Record("payments", baldur.Result(err, time.Since(start)))
//	}
//
// or let Execute do both, with a fallback or a dead letter when the breaker
// refuses the call. On the hottest paths resolve the service once with
// Client.Breaker and call its Allow and Record.
//
// # What happens behind
//
// Allow reads an atomic pointer to the breaker's snapshot, kept current by a
// KV watch of baldur_breakers; it does I/O only to ask for a half-open permit
// (baldur.permit.<svc>). Record adds to per-service atomic counters; a
// background reporter publishes one outcome report per active service every
// flush interval, and at once after a failure. While NATS is unreachable the
// counts stay in the counters, and reports whose publish failed wait in a
// bounded buffer (Stats shows what was reported, buffered and dropped). No
// caller of Allow or Record is ever blocked by the network.
//
// See docs/sdk.md for a service author's guide.
package baldur
