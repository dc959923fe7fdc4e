package baldur

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/telemetry"
)

// tracer records the SDK's spans: report and dead-letter publishes, replay
// handling.
var tracer = telemetry.Tracer("sdk")

// spanError marks span failed with err.
func spanError(span trace.Span, err error) {
	if span == nil || err == nil {
		return
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}

// kick asks the reporter for a flush soon. It does not block; a kick while
// one is pending is absorbed.
func (c *Client) kick() {
	if c.opts.failureFlushGap < 0 || c.kicked.Load() || !c.kicked.CompareAndSwap(false, true) {
		return
	}
	select {
	case c.kickCh <- struct{}{}:
	default:
	}
}

// run is the background reporter: a flush every interval, and an extra one
// after a kick, at most one per failure flush gap.
func (c *Client) run() {
	defer close(c.done)
	tick := time.NewTicker(c.opts.flushInterval)
	defer tick.Stop()
	var last time.Time // monotonic: when the last flush that published started
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		case <-c.kickCh:
			if wait := c.opts.failureFlushGap - time.Since(last); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-c.stop:
					t.Stop()
					return
				case <-t.C:
				}
			}
		}
		c.kicked.Store(false)
		// Only a flush that published holds the next failure back: an empty
		// tick must not delay the first failure after it.
		if started := time.Now(); c.flush(c.ctx) {
			last = started
		}
	}
}

// pending is an outcome report on its way to the stream.
type pending struct {
	svc    string
	id     uuid.UUID
	report events.OutcomeReport
	at     time.Time
	// maybeStored is set once a publish of this report failed in a way
	// that does not rule out that the stream stored it (a timeout): it is
	// then retried as is, with the same Nats-Msg-Id, and never merged.
	maybeStored bool
}

func (p *pending) calls() int64 { return p.report.Successes + p.report.Failures }

// flush publishes the buffered reports and a report per service with calls
// since the last flush, and waits for the acknowledgements. While the
// connection is down it leaves the counts in the counters. It reports whether
// it had anything to publish.
func (c *Client) flush(ctx context.Context) bool {
	if c.nc.Status() != nats.CONNECTED {
		return false
	}
	items := c.buf.takeAll()
	now := c.opts.clock()
	c.each(func(b *Breaker) {
		if b.h == nil {
			return
		}
		b.refreshConfig()
		if r, ok := b.take(); ok {
			items = append(items, &pending{svc: b.name, id: uuid.New(), report: r, at: now})
		}
	})
	if len(items) == 0 {
		return false
	}
	c.publish(ctx, items)
	return true
}

// publish sends items asynchronously and waits for every acknowledgement;
// what fails goes back to the buffer.
func (c *Client) publish(ctx context.Context, items []*pending) {
	futures := make([]jetstream.PubAckFuture, len(items))
	spans := make([]trace.Span, len(items))
	defer func() {
		for _, s := range spans {
			if s != nil {
				s.End()
			}
		}
	}()
	for i, p := range items {
		env := events.NewEnvelope(events.TypeOutcome, p.id, c.opts.nodeID, p.at)
		subject := events.MustOutcomeSubject(p.svc)
		msg, err := events.NewMsg(subject, env, p.report)
		if err == nil {
			// One producer span per report: the breaker-worker's fold links
			// to it.
			var sctx context.Context
			sctx, spans[i] = tracer.Start(ctx, "send "+subject, trace.WithSpanKind(trace.SpanKindProducer),
				trace.WithAttributes(telemetry.Messaging(subject, "send")...),
				trace.WithAttributes(telemetry.AttrService.String(p.svc), telemetry.AttrMessagingID.String(p.id.String()),
					attribute.Int64("baldur.report.calls", p.calls())))
			telemetry.Inject(sctx, msg)
		}
		if err != nil {
			// The counters cannot produce an invalid report; should one
			// appear, retrying it would not help.
			c.log.Error("baldur: invalid outcome report dropped", slog.String("service", p.svc), slog.String("error", err.Error()))
			c.buf.drop(p)
			continue
		}
		if futures[i], err = c.js.PublishMsgAsync(msg); err != nil {
			c.failed(p, err, false)
		}
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
			c.reports.Add(1)
			c.reportedCalls.Add(uint64(items[i].calls()))
		case err := <-f.Err():
			c.failed(items[i], err, !surelyNotStored(err))
			spanError(spans[i], err)
		case <-ctx.Done():
			c.failed(items[i], ctx.Err(), true)
			spanError(spans[i], ctx.Err())
		}
	}
}

// surelyNotStored reports whether a publish error proves that the stream did
// not store the message.
func surelyNotStored(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrTooManyStalledMsgs)
}

func (c *Client) failed(p *pending, err error, maybeStored bool) {
	p.maybeStored = p.maybeStored || maybeStored
	c.log.Debug("baldur: outcome report not acknowledged; buffered for a retry",
		slog.String("service", p.svc), slog.String("error", err.Error()))
	c.buf.put(p)
}

// drain publishes everything recorded until nothing is left or ctx ends.
func (c *Client) drain(ctx context.Context) error {
	retry := time.NewTicker(20 * time.Millisecond)
	defer retry.Stop()
	for {
		c.flush(ctx)
		var unreported int64
		c.each(func(b *Breaker) {
			if b.h != nil {
				unreported += b.pendingCalls()
			}
		})
		buffered, bufferedCalls, _, _ := c.buf.stats()
		if unreported == 0 && buffered == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("baldur: closing with %d calls unreported: %w", unreported+bufferedCalls, ctx.Err())
		case <-retry.C:
		}
	}
}

// buffer holds the reports waiting for a retry, at most size of them.
type buffer struct {
	mu           sync.Mutex
	size         int
	items        []*pending
	calls        int64
	dropped      uint64
	droppedCalls uint64
}

func newBuffer(size int) *buffer { return &buffer{size: size} }

// put buffers p for a retry: merged into a report of the same service when
// neither may have reached the stream, else appended, else dropped and
// counted when the buffer is full.
func (b *buffer) put(p *pending) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !p.maybeStored {
		for _, q := range b.items {
			if q.svc == p.svc && !q.maybeStored && merge(&q.report, p.report) {
				b.calls += p.calls()
				return
			}
		}
	}
	if len(b.items) >= b.size {
		b.dropped++
		b.droppedCalls += uint64(p.calls())
		return
	}
	b.items = append(b.items, p)
	b.calls += p.calls()
}

// drop counts p as dropped.
func (b *buffer) drop(p *pending) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dropped++
	b.droppedCalls += uint64(p.calls())
}

// takeAll empties the buffer and returns what it held.
func (b *buffer) takeAll() []*pending {
	b.mu.Lock()
	defer b.mu.Unlock()
	items := b.items
	b.items, b.calls = nil, 0
	return items
}

func (b *buffer) stats() (n int, calls int64, dropped, droppedCalls uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items), b.calls, b.dropped, b.droppedCalls
}

// merge adds the later report r to q, keeping the contract's rules; false
// (and q unchanged) when the sum would break them.
func merge(q *events.OutcomeReport, r events.OutcomeReport) bool {
	sum := *q
	sum.Successes += r.Successes
	sum.Failures += r.Failures
	sum.SlowCalls += r.SlowCalls
	if r.Successes > 0 {
		sum.TrailingFailures = r.TrailingFailures
	} else {
		sum.TrailingFailures += r.Failures
	}
	if len(r.FailureTypes) > 0 {
		types := make(map[string]int64, len(q.FailureTypes)+len(r.FailureTypes))
		for k, v := range q.FailureTypes {
			types[k] = v
		}
		for k, v := range r.FailureTypes {
			types[k] += v
		}
		sum.FailureTypes = types
	}
	if sum.Validate() != nil {
		return false
	}
	*q = sum
	return true
}

// Flush publishes the counts recorded so far and the buffered reports now,
// and waits for their acknowledgements until ctx ends. It returns an error
// when some calls are still unreported (NATS unreachable, a publish failed:
// they stay buffered and are retried by the background reporter).
func (c *Client) Flush(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	c.flush(ctx)
	buffered, calls, _, _ := c.buf.stats()
	if buffered > 0 {
		return fmt.Errorf("%w: %d reports (%d calls) wait for a retry", ErrPublish, buffered, calls)
	}
	if c.nc.Status() != nats.CONNECTED {
		return fmt.Errorf("%w: not connected (%s); calls stay counted until NATS is back", ErrPublish, c.nc.Status())
	}
	return nil
}
