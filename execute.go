package baldur

import (
	"context"
	"errors"
	"fmt"
)

// ExecOption configures one Execute or ExecuteValue call.
type ExecOption func(*execOptions)

type execOptions struct {
	fallback      func(ctx context.Context, err error) error
	value         any
	hasValue      bool
	deadLetter    *FailedOperation
	onFailure     bool
	deadOnFailure bool
}

// WithFallback runs fn when the call is refused (ErrOpen, ErrNoPermit,
// ErrDownstream, passed as err); Execute returns what fn returns. With
// FallbackOnFailure it also runs when the call fails, with the call's error.
func WithFallback(fn func(ctx context.Context, err error) error) ExecOption {
	return func(o *execOptions) { o.fallback = fn }
}

// WithFallbackValue makes ExecuteValue return v and a nil error when the call
// is refused (and, with FallbackOnFailure, when it fails). v must have
// ExecuteValue's type T; Execute, which returns no value, refuses it with
// ErrInvalidOption.
func WithFallbackValue[T any](v T) ExecOption {
	return func(o *execOptions) { o.value, o.hasValue = v, true }
}

// FallbackOnFailure also applies the fallback (function or value) when the
// call ran and failed, not only when it was refused.
func FallbackOnFailure() ExecOption { return func(o *execOptions) { o.onFailure = true } }

// WithDeadLetter submits op as a dead letter (DeadLetter) when the call is
// refused, so that it is replayed once the breaker closes; with onFailure
// also when the call ran and failed. The refusal or failure becomes the
// dead letter's error_message unless op sets one. The error returned is the
// call's (joined with the submission's error, if that failed).
func WithDeadLetter(op FailedOperation, onFailure bool) ExecOption {
	return func(o *execOptions) { o.deadLetter, o.deadOnFailure = &op, onFailure }
}

// Execute runs fn as a protected call to service svc: Allow first (a refusal
// returns an error wrapping ErrOpen, ErrNoPermit or ErrDownstream without
// calling fn), then fn, then Record with fn's error and duration. fn's error
// is returned as is. A call ended because ctx was canceled is not recorded:
// the caller gave up, the service did not fail. Options add fallbacks and a
// dead letter.
func (c *Client) Execute(ctx context.Context, svc string, fn func(ctx context.Context) error, opts ...ExecOption) error {
	o := execOpts(opts)
	if o.hasValue {
		return fmt.Errorf("%w: WithFallbackValue needs ExecuteValue, which returns a value", ErrInvalidOption)
	}
	_, err := run(ctx, c, svc, o, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// ExecuteValue is Execute for a call that returns a value: on a refusal (or
// a failure, with FallbackOnFailure) WithFallbackValue supplies the value.
func ExecuteValue[T any](ctx context.Context, c *Client, svc string, fn func(ctx context.Context) (T, error), opts ...ExecOption) (T, error) {
	o := execOpts(opts)
	if o.hasValue {
		if _, ok := o.value.(T); !ok {
			var zero T
			return zero, fmt.Errorf("%w: fallback value of type %T for a call returning %T", ErrInvalidOption, o.value, zero)
		}
	}
	return run(ctx, c, svc, o, fn)
}

func execOpts(opts []ExecOption) *execOptions {
	o := &execOptions{}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

func run[T any](ctx context.Context, c *Client, svc string, o *execOptions, fn func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	if c.closed.Load() {
		return zero, ErrClosed
	}
	b := c.Breaker(svc)
	if b.err != nil {
		return zero, b.err
	}
	if v := b.admit(); v != admitted {
		return fallback[T](ctx, c, o, v.err(svc), svc, true)
	}
	start := c.opts.clock()
	res, err := fn(ctx)
	d := c.opts.clock().Sub(start)
	if err != nil && errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return res, err
	}
	b.Record(Result(err, d))
	if err == nil {
		return res, nil
	}
	return fallback[T](ctx, c, o, err, svc, false)
}

// fallback applies the dead letter and the fallbacks to a refusal or (when
// asked) a failure err.
func fallback[T any](ctx context.Context, c *Client, o *execOptions, err error, svc string, refused bool) (T, error) {
	var zero T
	if o.deadLetter != nil && (refused || o.deadOnFailure) {
		op := *o.deadLetter
		if op.Service == "" {
			op.Service = svc
		}
		if op.Err == nil && op.ErrorMessage == "" {
			op.Err = err
		}
		if dlErr := c.DeadLetter(ctx, op); dlErr != nil {
			err = errors.Join(err, dlErr)
		}
	}
	if !refused && !o.onFailure {
		return zero, err
	}
	switch {
	case o.fallback != nil:
		return zero, o.fallback(ctx, err)
	case o.hasValue:
		return o.value.(T), nil
	}
	return zero, err
}
