package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/telemetry"
)

// Started is a running role: *Breaker, *Replay and *Watchdog.
type Started interface {
	// Checks returns the role's readiness checks.
	Checks() []telemetry.Check
	// Stop stops the role gracefully within ctx.
	Stop(ctx context.Context) error
}

// Run is a worker binary's life once its flags are parsed: Open with opts,
// start the role with start, serve health on pc.HTTPAddr with the role's
// checks, call ready (when not nil), wait until ctx ends (the signal), stop
// the role within stopTimeout and Close. It returns at once when the start
// fails, with the one-line error of the step (a telemetry failure wraps
// telemetry.ErrSetup), else the error of the stop.
func Run[R Started](ctx context.Context, pc process.Config, opts Options, start func(context.Context, *Resources) (R, error),
	stopTimeout time.Duration, ready func(R)) error {
	res, err := Open(ctx, pc, opts)
	if err != nil {
		return err
	}
	defer func() { _ = res.Close(context.WithoutCancel(ctx)) }()
	role, err := start(ctx, res)
	if err != nil {
		return oneLineError{err}
	}
	if _, err := res.ServeHealth(role.Checks()...); err != nil {
		return oneLineError{errors.Join(err, role.Stop(context.WithoutCancel(ctx)))}
	}
	attrs := []any{slog.String("nats", pc.RedactedNATSURL())}
	if res.Pool != nil {
		attrs = append(attrs, slog.String("database", process.Redact(pc.DatabaseURL)))
	}
	res.Log.Info(opts.Name+" running", attrs...)
	if ready != nil {
		ready(role)
	}
	<-ctx.Done()
	res.Log.Info("stopping", slog.Duration("timeout", stopTimeout))
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := role.Stop(sctx); err != nil {
		return oneLineError{err}
	}
	return nil
}
