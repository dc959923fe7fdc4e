package baldur

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"

	"github.com/baldurfleet/baldur/internal/fleetstate"
)

// Client is a node's connection to a Baldur fleet: a local copy of every
// breaker's state, per-service outcome counters reported in the background,
// dead letters and replay handlers. It is safe for concurrent use. Create it
// with Connect and end it with Close.
type Client struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	view *fleetstate.View
	opts options
	log  *slog.Logger
	// permitBody is {"node": <node id>}.
	permitBody []byte

	// breakers maps a service name to its Breaker; read without a lock,
	// replaced (copy on write) under mu when a service is first used.
	breakers atomic.Pointer[map[string]*Breaker]
	mu       sync.Mutex
	// recent caches lookups by the address of the name's bytes: a caller
	// that passes the same string (a constant, typically) finds its Breaker
	// without hashing the name. Slots are filled once and never replaced,
	// so the cache allocates at most len(recent) times.
	recent [64]atomic.Pointer[recentEntry]

	checkers  atomic.Pointer[[]*checker]
	checkerMu sync.Mutex

	// kicked is set when a flush was asked for and not yet started; kickCh
	// wakes the reporter.
	kicked atomic.Bool
	kickCh chan struct{}

	buf *buffer

	closed    atomic.Bool
	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
	// ctx ends at Close; replay handlers run under it.
	ctx    context.Context
	cancel context.CancelFunc
	// metrics is the registration of the observable instruments.
	metrics metric.Registration

	replayMu   sync.Mutex
	replaySubs map[*nats.Subscription]struct{}

	reports        atomic.Uint64
	reportedCalls  atomic.Uint64
	permitRequests atomic.Uint64
	permitsGranted atomic.Uint64
	invalidRecords atomic.Uint64
}

// checker is a registered downstream checker.
type checker struct{ fn func(svc string) bool }

// Connect joins the fleet over nc: it watches the buckets baldur_breakers,
// baldur_config and baldur_governance (returning once their current values
// are loaded: the emergency level sheds calls by tier) and starts
// the background reporter. The topology (streams and buckets) is created by
// the fleet's workers; Connect fails if the buckets do not exist. The caller
// keeps ownership of nc: Close does not close it.
func Connect(ctx context.Context, nc *nats.Conn, opts ...Option) (*Client, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil NATS connection", ErrInvalidOption)
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(o.publishTimeout),
		jetstream.WithPublishAsyncMaxPending(o.bufferSize+1024),
	)
	if err != nil {
		return nil, fmt.Errorf("baldur: jetstream: %w", err)
	}
	view, err := fleetstate.Watch(ctx, js, fleetstate.WithLogger(o.logger))
	if err != nil {
		return nil, fmt.Errorf("baldur: watching the fleet's state: %w", err)
	}
	c := &Client{
		nc:         nc,
		js:         js,
		view:       view,
		opts:       o,
		log:        o.logger,
		permitBody: permitBody(o.nodeID),
		kickCh:     make(chan struct{}, 1),
		buf:        newBuffer(o.bufferSize),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		replaySubs: make(map[*nats.Subscription]struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if c.metrics, err = c.registerMetrics(); err != nil {
		// Metrics are an aid, not a reason to refuse service.
		c.log.Warn("baldur: metrics not registered", slog.String("error", err.Error()))
	}
	go c.run()
	return c, nil
}

// NodeID returns this node's id.
func (c *Client) NodeID() string { return c.opts.nodeID }

// Breaker returns the breaker of service svc, resolved once: keep it and
// call its Allow and Record on the hot path. An invalid name gets a Breaker
// whose Err says why; it admits every call and records nothing.
func (c *Client) Breaker(svc string) *Breaker {
	slot := &c.recent[recentSlot(svc)]
	if e := slot.Load(); e != nil && e.key == svc {
		return e.b
	}
	if m := c.breakers.Load(); m != nil {
		if b, ok := (*m)[svc]; ok {
			if slot.Load() == nil {
				slot.CompareAndSwap(nil, &recentEntry{key: svc, b: b})
			}
			return b
		}
	}
	return c.addBreaker(svc)
}

// recentEntry is a slot of Client.recent: the caller's string (compared by
// address first, which is what makes it cheap) and its Breaker.
type recentEntry struct {
	key string
	b   *Breaker
}

// recentSlot picks the slot of name by the address and length of its bytes.
func recentSlot(name string) uintptr {
	p := uintptr(unsafe.Pointer(unsafe.StringData(name)))
	return (p>>3 ^ p>>9 ^ uintptr(len(name))) & 63
}

func (c *Client) addBreaker(svc string) *Breaker {
	c.mu.Lock()
	defer c.mu.Unlock()
	var cur map[string]*Breaker
	if m := c.breakers.Load(); m != nil {
		cur = *m
	}
	if b, ok := cur[svc]; ok {
		return b
	}
	b := newBreaker(c, svc)
	next := make(map[string]*Breaker, len(cur)+1)
	maps.Copy(next, cur)
	next[b.name] = b
	c.breakers.Store(&next)
	return b
}

// each calls fn for every breaker used so far.
func (c *Client) each(fn func(*Breaker)) {
	if m := c.breakers.Load(); m != nil {
		for _, b := range *m {
			fn(b)
		}
	}
}

// Allow reports whether a call to service svc may go now (see
// Breaker.Allow). It is a local read: no I/O except a half-open permit
// request, no allocation once svc has been seen.
func (c *Client) Allow(svc string) bool { return c.Breaker(svc).Allow() }

// Record counts the outcome of one call to service svc (see
// Breaker.Record). It never blocks.
func (c *Client) Record(svc string, o Outcome) { c.Breaker(svc).Record(o) }

// State returns the breaker state of service svc from the local copy, and
// whether the fleet has a breaker for it (false: none yet, which admits like
// closed).
func (c *Client) State(svc string) (State, bool) {
	s, ok := c.view.Snapshot(svc)
	if !ok {
		return StateClosed, false
	}
	return State(s.State), true
}

// AggregateFailureRate returns the fleet-wide failure rate, Σfailures /
// Σcalls over the windows of all breakers, as a fraction (0 when there are
// no calls).
func (c *Client) AggregateFailureRate() float64 { return c.view.AggregateFailureRate() }

// RegisterDownstreamChecker adds a predicate asked before every breaker
// decision: when it returns false for a service, the call is refused
// (Execute returns ErrDownstream). Checkers run on the caller's goroutine in
// Allow's hot path and must be fast and safe for concurrent use. The
// returned function removes the checker.
func (c *Client) RegisterDownstreamChecker(fn func(svc string) bool) (unregister func()) {
	ch := &checker{fn: fn}
	c.checkerMu.Lock()
	defer c.checkerMu.Unlock()
	var cur []*checker
	if p := c.checkers.Load(); p != nil {
		cur = *p
	}
	next := append(cur[:len(cur):len(cur)], ch)
	c.checkers.Store(&next)
	return func() {
		c.checkerMu.Lock()
		defer c.checkerMu.Unlock()
		p := c.checkers.Load()
		if p == nil {
			return
		}
		var next []*checker
		for _, x := range *p {
			if x != ch {
				next = append(next, x)
			}
		}
		if len(next) == 0 {
			c.checkers.Store(nil)
			return
		}
		c.checkers.Store(&next)
	}
}

// Stats are counters of a Client's reporting.
type Stats struct {
	// Reports is the number of outcome reports the stream acknowledged,
	// and ReportedCalls the calls they covered.
	Reports       uint64
	ReportedCalls uint64
	// Buffered is the number of reports waiting for a retry, and
	// BufferedCalls the calls they cover.
	Buffered      int
	BufferedCalls int64
	// Unreported is the number of calls recorded and not yet in a report
	// (they stay in the counters while NATS is unreachable).
	Unreported int64
	// Dropped is the number of reports dropped because the buffer was
	// full, and DroppedCalls the calls they covered.
	Dropped      uint64
	DroppedCalls uint64
	// PermitRequests is the number of half-open permits asked for, and
	// PermitsGranted the number granted.
	PermitRequests uint64
	PermitsGranted uint64
	// InvalidRecords counts outcomes recorded for invalid service names.
	InvalidRecords uint64
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	st := Stats{
		Reports:        c.reports.Load(),
		ReportedCalls:  c.reportedCalls.Load(),
		PermitRequests: c.permitRequests.Load(),
		PermitsGranted: c.permitsGranted.Load(),
		InvalidRecords: c.invalidRecords.Load(),
	}
	st.Buffered, st.BufferedCalls, st.Dropped, st.DroppedCalls = c.buf.stats()
	c.each(func(b *Breaker) { st.Unreported += b.pendingCalls() })
	return st
}

// Close stops the client: replay handlers are unsubscribed, the counts
// recorded so far and the buffered reports are published (waiting for
// their acknowledgement until ctx ends), and the state watch stops. Allow
// keeps answering from the last known state; outcomes recorded after Close
// are not reported. Close returns an error when reports could not be
// delivered before ctx ended. A second Close returns ErrClosed.
func (c *Client) Close(ctx context.Context) error {
	err := ErrClosed
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.replayMu.Lock()
		var errs []error
		for sub := range c.replaySubs {
			if e := sub.Unsubscribe(); e != nil && !errors.Is(e, nats.ErrConnectionClosed) {
				errs = append(errs, e)
			}
		}
		clear(c.replaySubs)
		c.replayMu.Unlock()
		close(c.stop)
		<-c.done
		errs = append(errs, c.drain(ctx))
		c.cancel()
		c.view.Stop()
		if c.metrics != nil {
			_ = c.metrics.Unregister()
		}
		err = errors.Join(errs...)
	})
	return err
}
