package baldur

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/telemetry"
)

// FailureDomain is the kind of a failed operation (the seed's domains).
type FailureDomain string

// Failure domains.
const (
	DomainExternalService = FailureDomain(domain.DomainExternalService)
	DomainInternalProcess = FailureDomain(domain.DomainInternalProcess)
	DomainAsyncTask       = FailureDomain(domain.DomainAsyncTask)
	DomainNotification    = FailureDomain(domain.DomainNotification)
	DomainDataSync        = FailureDomain(domain.DomainDataSync)
	DomainCustom          = FailureDomain(domain.DomainCustom)
)

// Priority orders replays: critical first, then normal, then low.
type Priority string

// Priorities.
const (
	PriorityCritical = Priority(domain.PriorityCritical)
	PriorityNormal   = Priority(domain.PriorityNormal)
	PriorityLow      = Priority(domain.PriorityLow)
)

// FailedOperation is an operation that could not be done now and must not be
// forgotten: a dead letter, stored by the fleet and replayed to the service's
// HandleReplay handler once its breaker closes (or an operator asks).
type FailedOperation struct {
	// ID makes a submission idempotent: the same ID is stored once. Empty:
	// a new random id.
	ID string
	// Service is the service the operation is for. Required (Execute's
	// WithDeadLetter fills it in).
	Service string
	// Domain defaults to DomainExternalService.
	Domain FailureDomain
	// FailureType names the failure, e.g. "PG_TIMEOUT"
	// (^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$). Empty: "CIRCUIT_OPEN" when the
	// error is a refusal by the breaker, else "ERROR".
	FailureType string
	// Operation names the operation (sent back on replay). Required.
	Operation string
	// IdempotencyKey identifies the operation for the service (sent back on
	// replay); a live entry with the same key is stored once.
	IdempotencyKey string
	// EntityType and EntityID say what the operation was about.
	EntityType, EntityID string
	// Request is the operation's input, replayed as the request body: a
	// json.RawMessage or []byte holding JSON is sent as is, anything else
	// is encoded as JSON. At most 256 KiB.
	Request any
	// ErrorCode is a short code of the failure.
	ErrorCode string
	// ErrorMessage describes the failure; empty: Err's message. Longer
	// messages are cut at 16 KiB.
	ErrorMessage string
	// Err is the failure, used when ErrorMessage is empty.
	Err error
	// Priority defaults to PriorityNormal.
	Priority Priority
	// MaxRetries is the number of retries after the first replay attempt;
	// nil means the default (2). See Retries.
	MaxRetries *int
	// Metadata is stored with the entry.
	Metadata map[string]any
}

// Retries returns a pointer to n for FailedOperation.MaxRetries.
func Retries(n int) *int { return &n }

// DeadLetter submits op to baldur.dlq.<service> (stream BALDUR_DLQ) and waits
// for the stream's acknowledgement: once DeadLetter returns nil, the dead
// letter will not be lost. op is checked against the contract first; an
// invalid one returns an error wrapping ErrInvalidDeadLetter and sends
// nothing.
func (c *Client) DeadLetter(ctx context.Context, op FailedOperation) error {
	if c.closed.Load() {
		return ErrClosed
	}
	msg, err := c.deadLetterMsg(op)
	if err != nil {
		return err
	}
	// A producer span in the failed call's trace: the replay-worker stores
	// its context with the entry, so that the replay continues the trace.
	ctx, span := tracer.Start(ctx, "send "+msg.Subject, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(telemetry.Messaging(msg.Subject, "send")...),
		trace.WithAttributes(telemetry.AttrService.String(op.Service), telemetry.AttrDLQID.String(telemetry.HeaderCarrier(msg.Header).Get(events.HeaderID)),
			attribute.String("baldur.dlq.operation", op.Operation)))
	defer span.End()
	telemetry.Inject(ctx, msg)
	ctx, cancel := context.WithTimeout(ctx, c.opts.publishTimeout)
	defer cancel()
	if _, err := c.js.PublishMsg(ctx, msg); err != nil {
		if streamFull(err) {
			err = fmt.Errorf("%w: %w: dead letter for %q: %w", ErrPublish, ErrBacklogFull, op.Service, err)
		} else {
			err = fmt.Errorf("%w: dead letter for %q: %w", ErrPublish, op.Service, err)
		}
		spanError(span, err)
		return err
	}
	return nil
}

// streamFull reports whether err is a stream refusing a message at one of
// its limits (per subject, messages or bytes): JetStream's store-failed
// error (code 10077) naming a maximum.
func streamFull(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == 10077 && strings.Contains(apiErr.Description, "maximum")
}

func (c *Client) deadLetterMsg(op FailedOperation) (*nats.Msg, error) {
	subject, err := events.DLQSubject(op.Service)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidDeadLetter, err)
	}
	id := uuid.New()
	if op.ID != "" {
		if id, err = uuid.Parse(op.ID); err != nil {
			return nil, fmt.Errorf("%w: id %q is not a UUID: %w", ErrInvalidDeadLetter, op.ID, err)
		}
	}
	dl := events.DeadLetter{
		Domain:         domain.FailureDomain(op.Domain),
		FailureType:    op.FailureType,
		Operation:      op.Operation,
		IdempotencyKey: op.IdempotencyKey,
		EntityType:     op.EntityType,
		EntityID:       op.EntityID,
		ErrorCode:      op.ErrorCode,
		ErrorMessage:   op.ErrorMessage,
		Priority:       domain.Priority(op.Priority),
		MaxRetries:     op.MaxRetries,
	}
	if dl.Domain == "" {
		dl.Domain = domain.DomainExternalService
	}
	if dl.ErrorMessage == "" && op.Err != nil {
		dl.ErrorMessage = op.Err.Error()
	}
	dl.ErrorMessage = clipText(dl.ErrorMessage, events.MaxErrorMessageLen)
	if dl.FailureType == "" {
		dl.FailureType = failureTypeFor(op.Err)
	}
	if dl.Request, err = rawJSON(op.Request); err != nil {
		return nil, fmt.Errorf("%w: request: %w", ErrInvalidDeadLetter, err)
	}
	if op.Metadata != nil {
		if dl.Metadata, err = json.Marshal(op.Metadata); err != nil {
			return nil, fmt.Errorf("%w: metadata: %w", ErrInvalidDeadLetter, err)
		}
	}
	env := events.NewEnvelope(events.TypeDLQ, id, c.opts.nodeID, c.opts.clock())
	msg, err := events.NewMsg(subject, env, dl)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidDeadLetter, err)
	}
	return msg, nil
}

// failureTypeFor names the failure type of a dead letter without one.
func failureTypeFor(err error) string {
	o := Outcome{Err: err}
	if ft := o.failureType(); ft != "" {
		return ft
	}
	if refusal(err) {
		return "CIRCUIT_OPEN"
	}
	return "ERROR"
}

// rawJSON encodes a dead letter's request.
func rawJSON(v any) (json.RawMessage, error) {
	switch r := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return r, nil
	case []byte:
		return json.RawMessage(r), nil
	}
	return json.Marshal(v)
}

// clipText cuts s to at most n bytes on a rune boundary and replaces
// control characters other than tab, CR and LF, so it fits a multi-line text
// field of the contract.
func clipText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
