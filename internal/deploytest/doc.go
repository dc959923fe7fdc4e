// Package deploytest holds no code: its tests check that what lives outside
// Go — the container image, the compose file, the Kubernetes manifests, the
// NATS server configuration and the configuration reference in
// docs/configuration.md — agrees with the code.
//
// The tests prove that every binary, flag, environment variable and health
// endpoint a manifest uses exists (the binaries are built and asked for their
// flags), that the documentation names every flag, environment variable and
// config field, and that the NATS accounts of deploy/nats, loaded into an
// embedded nats-server, let the SDK, the operator tools and the workers do
// their work and refuse a service's attempt to publish a command or write
// breaker state.
package deploytest
