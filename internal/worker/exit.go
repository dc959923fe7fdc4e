package worker

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/telemetry"
)

// Exit codes of the worker binaries that take theirs from ExitCode.
const (
	// ExitOK is a clean stop, or -h.
	ExitOK = 0
	// ExitFailed is a start that failed (NATS or PostgreSQL unreachable,
	// a taken --http-addr, ...) or a stop that did not finish cleanly.
	ExitFailed = 1
	// ExitUsage is an invalid command line, environment or configuration.
	ExitUsage = 2
)

// usageError marks an error of the command line or configuration.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Usage marks err as an error of the command line or configuration, which
// ExitCode maps to ExitUsage; nil stays nil.
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// RequireDatabase returns a Usage error unless pc names a PostgreSQL
// (--database-url).
func RequireDatabase(pc process.Config) error {
	if pc.DatabaseURL != "" {
		return nil
	}
	return Usage(fmt.Errorf("%w: --database-url ($%s) is required", process.ErrInvalidConfig, process.EnvDatabaseURL))
}

// ExitCode returns the exit code of a worker binary whose run ended with
// err, after printing err to stderr as one line "name: err": ExitOK for nil
// and flag.ErrHelp (nothing printed), ExitUsage for a Usage error or a
// telemetry set-up failure, else ExitFailed.
func ExitCode(stderr io.Writer, name string, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, oneLineError{err})
	var usage usageError
	if errors.As(err, &usage) || errors.Is(err, telemetry.ErrSetup) {
		return ExitUsage
	}
	return ExitFailed
}
