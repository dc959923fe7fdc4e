// Package telemetry is Baldur's observability plumbing: OpenTelemetry set up
// from the standard OTEL_* environment (Setup), W3C trace context carried in
// NATS headers with exact header names (HeaderCarrier, Inject, Extract),
// PostgreSQL spans from pgx (QueryTracer), metrics exported for Prometheus
// at /metrics, /healthz and /readyz on one small HTTP server (Serve), and a
// slog.Handler that adds the trace and span ids of a record's context
// (LogHandler).
//
// Components record through the global OpenTelemetry providers (otel.Tracer,
// otel.Meter), so that a library such as the SDK needs no wiring: Setup
// installs the SDK providers, and without it everything is a no-op except
// the propagation of a trace context that arrived in a message.
//
// The names and units of the metrics are listed in docs/observability.md.
package telemetry
