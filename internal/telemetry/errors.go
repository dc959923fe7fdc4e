package telemetry

import "errors"

// Sentinel errors of the package.
var (
	// ErrSetup reports an OpenTelemetry component that could not be built
	// from the environment (an unknown OTEL_TRACES_EXPORTER, a bad
	// endpoint, ...).
	ErrSetup = errors.New("telemetry: setup failed")
	// ErrNotReady reports a readiness check that failed; the message names
	// the check.
	ErrNotReady = errors.New("not ready")
	// ErrListen reports an HTTP address that could not be listened on.
	ErrListen = errors.New("telemetry: cannot listen")
)
