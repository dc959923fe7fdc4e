package baldur

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"go.opentelemetry.io/otel/trace"

	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/telemetry"
)

// ReplayRequest is one replay of a dead letter, delivered to the service's
// handler.
type ReplayRequest struct {
	// Service is the service the dead letter was for.
	Service string
	// DLQID is the dead letter's id (the ce-id it was submitted with).
	DLQID string
	// Attempt is the attempt number, from 1.
	Attempt int
	// Operation and IdempotencyKey are the dead letter's.
	Operation      string
	IdempotencyKey string
	// Body is the dead letter's request, as submitted (possibly empty).
	Body json.RawMessage
	// Header holds the delivery's headers: the CloudEvents ones and the
	// Baldur-* ones.
	Header nats.Header
}

// ReplayHandler runs a replayed operation. It should be idempotent: a
// delivery can come again after a timeout. Returning nil marks the dead
// letter replayed; an error asks for a retry with backoff, unless it is
// wrapped with Permanent, which sends the dead letter to review.
type ReplayHandler func(ctx context.Context, req ReplayRequest) error

// HandleReplay serves the replays of service svc (baldur.replay.<svc>) in the
// queue group shared by all the service's instances, so that each delivery
// is handled once. Deliveries are handled one at a time per subscription;
// the context ends when the Client is closed. stop unsubscribes and
// returns once the server delivers no more.
func (c *Client) HandleReplay(svc string, handler ReplayHandler) (stop func() error, err error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if handler == nil {
		return nil, fmt.Errorf("%w: nil replay handler", ErrInvalidOption)
	}
	subject, err := events.ReplaySubject(svc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidService, err)
	}
	sub, err := c.nc.QueueSubscribe(subject, events.ReplayQueueGroup, func(m *nats.Msg) {
		c.serveReplay(m, handler)
	})
	if err != nil {
		return nil, fmt.Errorf("baldur: subscribing to %s: %w", subject, err)
	}
	// Return once the server has the subscription, so a replay sent right
	// after finds a responder. While disconnected the flush fails and the
	// subscription is sent on reconnect: serving starts then.
	_ = c.nc.Flush()
	c.replayMu.Lock()
	c.replaySubs[sub] = struct{}{}
	c.replayMu.Unlock()
	return func() error {
		c.replayMu.Lock()
		_, live := c.replaySubs[sub]
		delete(c.replaySubs, sub)
		c.replayMu.Unlock()
		if !live {
			return nil
		}
		if err := sub.Unsubscribe(); err != nil {
			return err
		}
		// Return once the server has the unsubscription: no delivery comes
		// after stop.
		return c.nc.Flush()
	}, nil
}

// serveReplay decodes one delivery, runs the handler and replies.
func (c *Client) serveReplay(m *nats.Msg, handler ReplayHandler) {
	var reply events.ReplayReply
	msg, err := events.Decode(m.Subject, m.Header, m.Data)
	if err != nil {
		c.log.Warn("baldur: malformed replay delivery", slog.String("subject", m.Subject), slog.String("error", err.Error()))
		reply = events.ReplayReply{Error: clipText("malformed replay delivery: "+err.Error(), events.MaxErrorMessageLen)}
	} else {
		d := msg.Payload.(events.ReplayDelivery)
		req := ReplayRequest{
			Service: d.Service, DLQID: d.DLQID, Attempt: d.Attempt, Operation: d.Operation,
			IdempotencyKey: d.IdempotencyKey, Body: d.Request, Header: m.Header,
		}
		// The handler runs in the trace of the failed call, continued by
		// the replay-worker's request.
		ctx, span := tracer.Start(telemetry.Extract(c.ctx, m.Header), "process "+m.Subject,
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(telemetry.Messaging(m.Subject, "process")...),
			trace.WithAttributes(telemetry.AttrService.String(d.Service), telemetry.AttrDLQID.String(d.DLQID),
				telemetry.AttrAttempt.Int(d.Attempt)))
		err := callHandler(ctx, handler, req)
		spanError(span, err)
		span.End()
		if err != nil {
			reply = events.ReplayReply{Error: clipText(err.Error(), events.MaxErrorMessageLen), Retryable: !IsPermanent(err)}
			if reply.Error == "" {
				reply.Error = "replay failed"
			}
		} else {
			reply = events.ReplayReply{OK: true}
		}
	}
	body, err := json.Marshal(reply)
	if err == nil {
		err = m.Respond(body)
	}
	if err != nil {
		c.log.Warn("baldur: replying to a replay delivery", slog.String("subject", m.Subject), slog.String("error", err.Error()))
	}
}

// callHandler runs handler, turning a panic into a permanent error.
func callHandler(ctx context.Context, handler ReplayHandler, req ReplayRequest) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = Permanent(fmt.Errorf("replay handler panicked: %v", p))
		}
	}()
	return handler(ctx, req)
}
