package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/process"
)

// Exit codes of the baldur CLI; scripts can rely on them.
const (
	// ExitOK: the command was applied, or the read succeeded.
	ExitOK = 0
	// ExitFailed: the fleet refused the command, no worker applied it in
	// time, the thing asked for does not exist, a concurrent write won, a
	// stored value is corrupt, or the operation failed.
	ExitFailed = 1
	// ExitUsage: bad command line: unknown command or flag, missing
	// argument or --reason, or a value the contract refuses (a bad service
	// name, an invalid config value, a TTL out of range), whether the CLI
	// or the operator client finds it; nothing was sent or written.
	ExitUsage = 2
	// ExitUnreachable: NATS, the fleet's topology, a replay-worker or
	// PostgreSQL could not be reached.
	ExitUnreachable = 3
)

// Errors of the CLI.
var (
	// ErrUsage reports a bad command line.
	ErrUsage = errors.New("usage")
	// ErrDatabaseUnreachable reports that PostgreSQL does not answer.
	ErrDatabaseUnreachable = errors.New("PostgreSQL unreachable")
	// ErrFailed reports an operation the fleet carried out without success
	// (a replay that failed or was blocked, a broken audit chain).
	ErrFailed = errors.New("failed")
)

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// ExitCode returns the exit code of err: 0 for nil, 2 for usage errors
// (opsclient.ErrInvalid included: an argument refused before anything was
// sent), 3 for an unreachable dependency, 1 for everything else.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrUsage), errors.Is(err, process.ErrInvalidConfig), errors.Is(err, opsclient.ErrInvalid):
		return ExitUsage
	case errors.Is(err, opsclient.ErrNotApplied), errors.Is(err, opsclient.ErrRefused):
		return ExitFailed
	case errors.Is(err, opsclient.ErrUnreachable), errors.Is(err, opsclient.ErrNoReplayWorker),
		errors.Is(err, process.ErrUnreachable), errors.Is(err, ErrDatabaseUnreachable),
		errors.Is(err, context.DeadlineExceeded):
		return ExitUnreachable
	}
	return ExitFailed
}
