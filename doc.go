// Package baldur is the SDK that services embed to take part in a Baldur fleet:
// it answers "may I call this dependency?" from a local copy of the fleet's
// breaker state, reports call outcomes, submits dead letters and serves replays.
//
// The wire contract it speaks is described in internal/events and docs/contract.md;
// services in other languages publish the same JSON.
package baldur
