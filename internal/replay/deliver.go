package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/codes"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/telemetry"
)

// deliveryOutcome is what one delivery came to, for domain.Attempt.
type deliveryOutcome struct {
	Result domain.AttemptResult
	Error  string
}

// deliver sends the entry to its service as a core NATS request to
// baldur.replay.<svc> (body: the stored request; headers: CloudEvents plus
// Baldur-Dlq-Id, Baldur-Attempt, Baldur-Operation, Baldur-Idempotency-Key)
// and classifies the answer:
//
//   - {"ok": true} → AttemptOK;
//   - {"ok": false, "retryable": true}, or no answer within RequestTimeout →
//     AttemptFailed;
//   - {"ok": false} without retryable → AttemptNotRetryable;
//   - an answer that breaks the contract → AttemptFailed, and a rejected
//     event of kind replay_reply;
//   - no subscriber (nats.ErrNoResponders) → AttemptNoResponders;
//   - an entry whose delivery cannot be built → AttemptNotRetryable, so that
//     an operator looks at it.
//
// The error is non-nil only when nothing was attempted: ctx ended, or the
// transport failed (wrapping ErrDeliveryTransport).
//
// The request is sent in a client span that continues the trace the entry
// was ingested in (tc, its stored traceparent), with the trace context in
// the delivery's headers for the service's handler.
func (e *Engine) deliver(ctx context.Context, en domain.DLQEntry, tc string) (out deliveryOutcome, err error) {
	subject, err := events.ReplaySubject(en.Service)
	if err != nil {
		return deliveryOutcome{Result: domain.AttemptNotRetryable, Error: "cannot deliver: " + err.Error()}, nil
	}
	d := events.ReplayDelivery{
		Service: en.Service, DLQID: en.ID, Attempt: en.RetryCount + 1,
		Operation: en.Operation, IdempotencyKey: en.IdempotencyKey, Request: en.Request,
	}
	env := events.NewEnvelopeRandomID(events.TypeReplay, e.cfg.Node, e.cfg.Now())
	msg, err := events.NewMsg(subject, env, d)
	if err != nil {
		return deliveryOutcome{Result: domain.AttemptNotRetryable, Error: "cannot build the replay delivery: " + err.Error()}, nil
	}
	sctx, span := startDeliverySpan(ctx, subject, en, tc)
	start := time.Now()
	defer func() {
		result := string(out.Result)
		if err != nil {
			result = "error"
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		} else if out.Result != domain.AttemptOK {
			span.SetStatus(codes.Error, out.Error)
		}
		span.SetAttributes(telemetry.AttrResult.String(result))
		span.End()
		recordDelivery(ctx, en.Service, result, time.Since(start))
	}()
	telemetry.Inject(sctx, msg)
	rctx, cancel := context.WithTimeout(sctx, e.cfg.RequestTimeout)
	defer cancel()
	reply, err := e.nc.RequestMsgWithContext(rctx, msg)
	switch {
	case err == nil:
	case errors.Is(err, nats.ErrNoResponders):
		return deliveryOutcome{Result: domain.AttemptNoResponders,
			Error: fmt.Sprintf("no responders on %s: the service has no replay handler", subject)}, nil
	case ctx.Err() != nil:
		return deliveryOutcome{}, context.Cause(ctx)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return deliveryOutcome{Result: domain.AttemptFailed,
			Error: fmt.Sprintf("no reply on %s within %s", subject, e.cfg.RequestTimeout)}, nil
	default:
		return deliveryOutcome{}, fmt.Errorf("%w: request to %s for entry %s: %w", ErrDeliveryTransport, subject, en.ID, err)
	}
	r, err := events.DecodeReplayReply(reply.Data)
	if err != nil {
		e.rejectReply(ctx, subject, reply, err)
		return deliveryOutcome{Result: domain.AttemptFailed, Error: "invalid replay reply: " + err.Error()}, nil
	}
	switch {
	case r.OK:
		return deliveryOutcome{Result: domain.AttemptOK}, nil
	case r.Retryable:
		return deliveryOutcome{Result: domain.AttemptFailed, Error: r.Error}, nil
	default:
		return deliveryOutcome{Result: domain.AttemptNotRetryable, Error: r.Error}, nil
	}
}

// rejectReply publishes a reply that breaks the contract as a rejected event
// of kind replay_reply.
func (e *Engine) rejectReply(ctx context.Context, subject string, reply *nats.Msg, cause error) {
	at := e.cfg.Now().UTC()
	r := events.NewRejected(subject, reply.Header, len(reply.Data), cause, at)
	r.Kind = events.RejectedReplayReply
	err := func() error {
		subj, err := events.RejectedSubject(r.Kind)
		if err != nil {
			return err
		}
		msg, err := events.NewMsg(subj, events.NewEnvelopeRandomID(events.TypeRejected, e.cfg.Node, at), r)
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, e.cfg.PublishTimeout)
		defer cancel()
		if _, err = e.js.PublishMsg(pctx, msg); err == nil {
			countRejected(ctx, r.Kind)
		}
		return err
	}()
	if err != nil {
		e.log.WarnContext(ctx, "publish rejected replay reply", slog.String("subject", subject), slog.Any("error", err))
	}
}

// limiter is a token bucket on the engine's clock: rate tokens per second,
// a burst of max(1, rate). A rate of 0 or less is no limit.
type limiter struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
	after  func(time.Duration) <-chan time.Time
}

func newLimiter(rate float64, now func() time.Time, after func(time.Duration) <-chan time.Time) *limiter {
	l := &limiter{rate: rate, now: now, after: after}
	if rate > 0 {
		l.burst = max(1, rate)
		l.tokens = l.burst
		l.last = now()
	}
	return l
}

// wait takes one token, waiting on the clock until one is available or ctx
// ends.
func (l *limiter) wait(ctx context.Context) error {
	if l.rate <= 0 {
		return nil
	}
	for {
		now := l.now()
		if el := now.Sub(l.last); el > 0 {
			l.tokens = min(l.burst, l.tokens+el.Seconds()*l.rate)
			l.last = now
		}
		if l.tokens >= 1 {
			l.tokens--
			return nil
		}
		need := time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-l.after(max(need, time.Microsecond)):
		}
	}
}
