package fleetstate

import (
	"log/slog"
	"time"

	"github.com/baldurfleet/baldur/internal/events"
)

// Option configures Watch.
type Option func(*options)

type options struct {
	log          *slog.Logger
	rejected     func(events.Rejected)
	clock        func() time.Time
	noConfig     bool
	noGovernance bool
}

func defaultOptions() options {
	return options{
		log:      slog.New(slog.DiscardHandler),
		rejected: func(events.Rejected) {},
		clock:    time.Now,
	}
}

// WithLogger sets the logger of the view's watch goroutines (default: none).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithRejected sets the function told about every value of baldur_config or
// baldur_governance that the view refuses and ignores (kind config or
// governance, with the key as $KV.<bucket>.<key> in Subject and the reason).
// A breaker-worker publishes these to baldur.event.rejected.<kind>. It is
// called on a watch goroutine and must not block.
func WithRejected(fn func(events.Rejected)) Option {
	return func(o *options) {
		if fn != nil {
			o.rejected = fn
		}
	}
}

// WithClock sets the clock that stamps rejected values (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.clock = now
		}
	}
}

// WithoutConfig leaves baldur_config unwatched: Config returns the built-in
// defaults.
func WithoutConfig() Option { return func(o *options) { o.noConfig = true } }

// WithoutGovernance leaves baldur_governance unwatched: Governance returns the
// zero value (kill switch off, level normal, no error-budget gate).
func WithoutGovernance() Option { return func(o *options) { o.noGovernance = true } }
