package baldur

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/baldurfleet/baldur/internal/events"
)

// Defaults of the Connect options.
const (
	// DefaultFlushInterval is how often outcome counts are reported.
	DefaultFlushInterval = 250 * time.Millisecond
	// DefaultFailureFlushGap is the shortest time between two extra flushes
	// triggered by failures.
	DefaultFailureFlushGap = 5 * time.Millisecond
	// DefaultBufferSize is how many outcome reports may wait for a retry.
	DefaultBufferSize = 4096
	// DefaultRequestTimeout bounds a half-open permit request.
	DefaultRequestTimeout = 100 * time.Millisecond
	// DefaultPublishTimeout bounds the wait for a stream's acknowledgement.
	DefaultPublishTimeout = 5 * time.Second
)

// Option configures Connect.
type Option func(*options) error

type options struct {
	nodeID          string
	flushInterval   time.Duration
	failureFlushGap time.Duration
	bufferSize      int
	requestTimeout  time.Duration
	publishTimeout  time.Duration
	logger          *slog.Logger
	clock           func() time.Time
}

func defaultOptions() options {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	return options{
		nodeID:          host + "-" + strconv.Itoa(os.Getpid()),
		flushInterval:   DefaultFlushInterval,
		failureFlushGap: DefaultFailureFlushGap,
		bufferSize:      DefaultBufferSize,
		requestTimeout:  DefaultRequestTimeout,
		publishTimeout:  DefaultPublishTimeout,
		logger:          slog.Default(),
		clock:           time.Now,
	}
}

// WithNodeID names this node in outcome reports (ce-source, counted by
// min_failing_nodes), permit requests and dead letters. The default is
// "<hostname>-<pid>". It must be printable and at most 256 bytes.
func WithNodeID(id string) Option {
	return func(o *options) error {
		if err := (events.PermitRequest{Node: id}).Validate(); err != nil {
			return fmt.Errorf("%w: node id: %w", ErrInvalidOption, err)
		}
		o.nodeID = id
		return nil
	}
}

// WithFlushInterval sets how often the counts recorded since the last report
// are published (default DefaultFlushInterval). It must be at least 1ms.
func WithFlushInterval(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Millisecond {
			return fmt.Errorf("%w: flush interval %s is below 1ms", ErrInvalidOption, d)
		}
		o.flushInterval = d
		return nil
	}
}

// WithFailureFlushGap sets the shortest time between two extra flushes
// triggered by a failure (default DefaultFailureFlushGap): a failure is
// reported at once, and a burst of failures costs at most one extra flush
// per gap. A negative gap turns the extra flushes off.
func WithFailureFlushGap(d time.Duration) Option {
	return func(o *options) error {
		o.failureFlushGap = d
		return nil
	}
}

// WithBufferSize bounds how many outcome reports wait for a retry when
// publishing fails (default DefaultBufferSize). Reports of one service that
// surely did not reach the stream are merged; beyond the bound reports are
// dropped and counted in Stats.
func WithBufferSize(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: buffer size %d must be at least 1", ErrInvalidOption, n)
		}
		o.bufferSize = n
		return nil
	}
}

// WithRequestTimeout bounds a half-open permit request (default
// DefaultRequestTimeout). A request that times out is a refusal.
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: request timeout %s must be positive", ErrInvalidOption, d)
		}
		o.requestTimeout = d
		return nil
	}
}

// WithPublishTimeout bounds the wait for the stream's acknowledgement of an
// outcome report or a dead letter (default DefaultPublishTimeout).
func WithPublishTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: publish timeout %s must be positive", ErrInvalidOption, d)
		}
		o.publishTimeout = d
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		o.logger = l
		return nil
	}
}

// WithClock sets the clock (default time.Now). The SDK reads it to compare
// with a breaker's recovery_at, to time Execute's calls and to stamp
// messages.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		o.clock = now
		return nil
	}
}
