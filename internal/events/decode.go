package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/baldurfleet/baldur/internal/domain"
)

// checkSize refuses a body over limit.
func checkSize(payload string, body []byte, limit int) error {
	if len(body) > limit {
		return fmt.Errorf("%w: %s body is %d bytes, at most %d are allowed", ErrTooLarge, payload, len(body), limit)
	}
	return nil
}

// Field lists, in struct order, for the member scan.
var (
	outcomeFields          = objectFields{payloadOutcome, []string{"successes", "failures", "slow_calls", "trailing_failures", "failure_types"}}
	commandFields          = objectFields{payloadCommand, []string{"action", "actor", "reason", "ttl", "trigger_replay", "override_kill_switch", "override", "trigger", "valid_until"}}
	overrideFields         = objectFields{payloadCommand, []string{"failure_threshold", "failure_rate_threshold", "minimum_calls", "slow_call_rate_threshold", "recovery_timeout"}}
	governanceFields       = objectFields{payloadGovernance, []string{"action", "level", "slo_target", "slo_window", "actor", "reason", "valid_until"}}
	deadLetterFields       = objectFields{payloadDeadLetter, []string{"domain", "failure_type", "operation", "idempotency_key", "entity_type", "entity_id", "request", "error_code", "error_message", "priority", "max_retries", "metadata"}}
	replayReplyFields      = objectFields{payloadReplayReply, []string{"ok", "error", "retryable"}}
	permitRequestFields    = objectFields{payloadPermitRequest, []string{"node"}}
	permitReplyFields      = objectFields{payloadPermitReply, []string{"granted", "state", "generation"}}
	transitionFields       = objectFields{payloadTransition, []string{"service", "from", "to", "from_mode", "mode", "trigger", "trigger_replay", "generation", "actor", "reason", "at", "window", "kill_switch_override"}}
	windowFields           = objectFields{payloadTransition, []string{"successes", "failures", "slow_calls", "failure_rate", "slow_call_rate", "failing_nodes"}}
	replayEntryFields      = objectFields{payloadReplayEntry, []string{"service", "entry_id", "operation", "attempt", "status", "error", "retryable", "next_attempt_at", "reason", "actor", "at"}}
	replayBlockedFields    = objectFields{payloadReplayBlocked, []string{"service", "gate", "reason", "entry_id", "actor", "at"}}
	replayBatchFields      = objectFields{payloadReplayBatch, []string{"service", "trigger", "actor", "total", "success_count", "failed_count", "skipped_count", "escalated_count", "batches", "governance_blocked", "governance_block_reason", "inflight_skipped", "priority_used", "domains_processed", "started_at", "at"}}
	governanceChangeFields = objectFields{payloadGovernanceChange, []string{"key", "old", "new", "actor", "reason", "at"}}
	rejectedFields         = objectFields{payloadRejected, []string{"kind", "code", "subject", "reason", "ce_id", "ce_type", "source", "size", "at"}}
	slaBreachedFields      = objectFields{payloadSLABreached, []string{"service", "entry_id", "domain", "sla_hours", "at"}}
	archivedFields         = objectFields{payloadArchived, []string{"service", "cell", "state", "mode", "generation", "trigger", "actor", "reason", "at", "window"}}
)

// DecodeOutcome strictly decodes and validates an outcome report body.
func DecodeOutcome(body []byte) (OutcomeReport, error) {
	var r OutcomeReport
	if err := checkSize(payloadOutcome, body, MaxOutcomeBody); err != nil {
		return OutcomeReport{}, err
	}
	if fast, ok := decodeOutcomeFast(body); ok {
		if err := fast.Validate(); err != nil {
			return OutcomeReport{}, err
		}
		return fast, nil
	}
	err := unmarshalStrict(body, &r, outcomeFields, func(_ int, name string, val []byte) error {
		if name == "failure_types" {
			return scanMapKeys(val, payloadOutcome, name, nil)
		}
		return nil
	})
	if err != nil {
		return OutcomeReport{}, err
	}
	if len(r.FailureTypes) == 0 {
		r.FailureTypes = nil
	}
	if err := r.Validate(); err != nil {
		return OutcomeReport{}, err
	}
	return r, nil
}

// checkDuration decodes a duration member itself, for an error that names the
// field (domain.Duration's own error cannot). A null is refused where the
// field is not a pointer: domain.Duration cannot decode it.
func checkDuration(payload, field string, val []byte, nullOK bool) error {
	if bytes.Equal(val, []byte("null")) {
		if nullOK {
			return nil
		}
		return fieldErr(ErrInvalidValue, payload, field, "is null; omit it or give a duration such as \"90m\"")
	}
	var d domain.Duration
	if err := d.UnmarshalJSON(val); err != nil {
		return fieldErr(ErrInvalidValue, payload, field, "is %s: %v", clip(string(val), 40), err)
	}
	return nil
}

// DecodeControl strictly decodes and validates a breaker command body.
func DecodeControl(body []byte) (BreakerCommand, error) {
	var c BreakerCommand
	if err := checkSize(payloadCommand, body, MaxCommandBody); err != nil {
		return BreakerCommand{}, err
	}
	ttlGiven := false
	err := unmarshalStrict(body, &c, commandFields, func(_ int, name string, val []byte) error {
		switch name {
		case "ttl":
			ttlGiven = true
			return checkDuration(payloadCommand, name, val, false)
		case "override":
			if bytes.Equal(val, []byte("null")) {
				return nil
			}
			return scanObject(val, "override.", overrideFields, func(_ int, name string, val []byte) error {
				if name == "recovery_timeout" {
					return checkDuration(payloadCommand, "override."+name, val, true)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return BreakerCommand{}, err
	}
	if ttlGiven && c.TTL == 0 {
		return BreakerCommand{}, fieldErr(ErrInvalidValue, payloadCommand, "ttl", "is 0; omit it to use the configured manual_override_ttl, or give %s..%s", MinTTL, MaxTTL)
	}
	if err := c.Validate(); err != nil {
		return BreakerCommand{}, err
	}
	return c, nil
}

// DecodeGovernance strictly decodes and validates a governance command body.
func DecodeGovernance(body []byte) (GovernanceCommand, error) {
	var g GovernanceCommand
	if err := checkSize(payloadGovernance, body, MaxGovernanceBody); err != nil {
		return GovernanceCommand{}, err
	}
	windowGiven := false
	err := unmarshalStrict(body, &g, governanceFields, func(_ int, name string, val []byte) error {
		if name == "slo_window" {
			windowGiven = true
			return checkDuration(payloadGovernance, name, val, false)
		}
		return nil
	})
	if err != nil {
		return GovernanceCommand{}, err
	}
	if windowGiven && g.SLOWindow == 0 {
		return GovernanceCommand{}, fieldErr(ErrInvalidValue, payloadGovernance, "slo_window", "is 0; omit it for the default (%s) or give %s..%s", domain.DefaultSLOWindow, domain.MinSLOWindow, domain.MaxSLOWindow)
	}
	if err := g.Validate(); err != nil {
		return GovernanceCommand{}, err
	}
	return g, nil
}

// DecodeDeadLetter strictly decodes and validates a dead letter body. The
// request and metadata are kept compacted.
func DecodeDeadLetter(body []byte) (DeadLetter, error) {
	var d DeadLetter
	if err := checkSize(payloadDeadLetter, body, MaxDeadLetterBody); err != nil {
		return DeadLetter{}, err
	}
	if err := unmarshalStrict(body, &d, deadLetterFields, nil); err != nil {
		return DeadLetter{}, err
	}
	var err error
	if d.Request, err = compactRaw(d.Request); err != nil {
		return DeadLetter{}, fieldErr(ErrInvalidValue, payloadDeadLetter, "request", "is not valid JSON: %v", err)
	}
	if d.Metadata, err = compactRaw(d.Metadata); err != nil {
		return DeadLetter{}, fieldErr(ErrInvalidValue, payloadDeadLetter, "metadata", "is not valid JSON: %v", err)
	}
	if err := d.Validate(); err != nil {
		return DeadLetter{}, err
	}
	return d, nil
}

// compactRaw compacts a raw JSON value into a fresh slice; null becomes nil.
func compactRaw(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecodeReplayReply strictly decodes and validates a service's answer to a
// replay delivery. "ok" is required.
func DecodeReplayReply(body []byte) (ReplayReply, error) {
	var r ReplayReply
	if err := checkSize(payloadReplayReply, body, MaxReplayReplyBody); err != nil {
		return ReplayReply{}, err
	}
	okGiven := false
	if err := unmarshalStrict(body, &r, replayReplyFields, func(_ int, name string, val []byte) error {
		if name == "ok" {
			okGiven = !bytes.Equal(val, []byte("null"))
		}
		return nil
	}); err != nil {
		return ReplayReply{}, err
	}
	if !okGiven {
		return ReplayReply{}, fieldErr(ErrMissingField, payloadReplayReply, "ok", "is required (true or false)")
	}
	if err := r.Validate(); err != nil {
		return ReplayReply{}, err
	}
	return r, nil
}

// DecodePermitRequest strictly decodes and validates a permit request.
func DecodePermitRequest(body []byte) (PermitRequest, error) {
	var p PermitRequest
	if err := checkSize(payloadPermitRequest, body, MaxPermitBody); err != nil {
		return PermitRequest{}, err
	}
	if err := unmarshalStrict(body, &p, permitRequestFields, nil); err != nil {
		return PermitRequest{}, err
	}
	if err := p.Validate(); err != nil {
		return PermitRequest{}, err
	}
	return p, nil
}

// DecodePermitReply strictly decodes and validates a permit reply.
func DecodePermitReply(body []byte) (PermitReply, error) {
	var p PermitReply
	if err := checkSize(payloadPermitReply, body, MaxPermitBody); err != nil {
		return PermitReply{}, err
	}
	if err := unmarshalStrict(body, &p, permitReplyFields, nil); err != nil {
		return PermitReply{}, err
	}
	if err := p.Validate(); err != nil {
		return PermitReply{}, err
	}
	return p, nil
}

// DecodeTransitionEvent strictly decodes and validates a transition event.
func DecodeTransitionEvent(body []byte) (TransitionEvent, error) {
	var e TransitionEvent
	if err := checkSize(payloadTransition, body, MaxEventBody); err != nil {
		return TransitionEvent{}, err
	}
	if err := unmarshalStrict(body, &e, transitionFields, func(_ int, name string, val []byte) error {
		if name == "window" && !bytes.Equal(val, []byte("null")) {
			return scanObject(val, "window.", windowFields, nil)
		}
		return nil
	}); err != nil {
		return TransitionEvent{}, err
	}
	if err := e.Validate(); err != nil {
		return TransitionEvent{}, err
	}
	return e, nil
}

// DecodeArchivedEvent strictly decodes and validates an archived breaker
// event.
func DecodeArchivedEvent(body []byte) (ArchivedEvent, error) {
	var e ArchivedEvent
	if err := checkSize(payloadArchived, body, MaxEventBody); err != nil {
		return ArchivedEvent{}, err
	}
	if err := unmarshalStrict(body, &e, archivedFields, func(_ int, name string, val []byte) error {
		if name == "window" && !bytes.Equal(val, []byte("null")) {
			return scanObject(val, "window.", windowFields, nil)
		}
		return nil
	}); err != nil {
		return ArchivedEvent{}, err
	}
	if err := e.Validate(); err != nil {
		return ArchivedEvent{}, err
	}
	return e, nil
}

// DecodeReplayEntryEvent strictly decodes and validates a completed, failed
// or escalated replay event.
func DecodeReplayEntryEvent(body []byte) (ReplayEntryEvent, error) {
	return decodeEvent[ReplayEntryEvent](body, replayEntryFields)
}

// DecodeReplayBlockedEvent strictly decodes and validates a blocked replay
// event.
func DecodeReplayBlockedEvent(body []byte) (ReplayBlockedEvent, error) {
	return decodeEvent[ReplayBlockedEvent](body, replayBlockedFields)
}

// DecodeReplayBatchEvent strictly decodes and validates a batch_completed
// replay event.
func DecodeReplayBatchEvent(body []byte) (ReplayBatchEvent, error) {
	return decodeEvent[ReplayBatchEvent](body, replayBatchFields)
}

// DecodeGovernanceChange strictly decodes and validates a governance change
// event. Old and New are kept compacted.
func DecodeGovernanceChange(body []byte) (GovernanceChange, error) {
	g, err := decodeEvent[GovernanceChange](body, governanceChangeFields)
	if err != nil {
		return GovernanceChange{}, err
	}
	g.Old, _ = compactRaw(g.Old) // valid: checked by Validate
	g.New, _ = compactRaw(g.New)
	return g, nil
}

// DecodeSLABreachedEvent strictly decodes and validates an sla_breached
// dead-letter event.
func DecodeSLABreachedEvent(body []byte) (SLABreachedEvent, error) {
	return decodeEvent[SLABreachedEvent](body, slaBreachedFields)
}

// DecodeRejected strictly decodes and validates a rejected event.
func DecodeRejected(body []byte) (Rejected, error) {
	return decodeEvent[Rejected](body, rejectedFields)
}

type validator interface{ Validate() error }

func decodeEvent[T validator](body []byte, of objectFields) (T, error) {
	var v T
	if err := checkSize(of.payload, body, MaxEventBody); err != nil {
		return v, err
	}
	if err := unmarshalStrict(body, &v, of, nil); err != nil {
		var zero T
		return zero, err
	}
	if err := v.Validate(); err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// ReplayDelivery is a request to baldur.replay.<svc>: the stored request of a
// dead letter, and the headers that say which entry and attempt it is.
type ReplayDelivery struct {
	// Service is the service the delivery is for (from the subject).
	Service string
	// DLQID is the entry's id (Baldur-Dlq-Id).
	DLQID string
	// Attempt is the attempt number, from 1 (Baldur-Attempt).
	Attempt int
	// Operation is the dead letter's operation (Baldur-Operation).
	Operation string
	// IdempotencyKey is the dead letter's idempotency key, if any
	// (Baldur-Idempotency-Key).
	IdempotencyKey string
	// Request is the body: the dead letter's request, possibly empty.
	Request json.RawMessage
}

const payloadReplayDelivery = "replay delivery"

// SetHeader writes the Baldur-* delivery headers into h.
func (d ReplayDelivery) SetHeader(h nats.Header) {
	h[HeaderDLQID] = []string{d.DLQID}
	h[HeaderAttempt] = []string{strconv.Itoa(d.Attempt)}
	h[HeaderOperation] = []string{d.Operation}
	if d.IdempotencyKey != "" {
		h[HeaderIdempotencyKey] = []string{d.IdempotencyKey}
	}
}

// Validate checks the delivery: a service, an entry id, an attempt ≥ 1, an
// operation, header-safe values, and a request that is empty or valid JSON
// within MaxRequestSize.
func (d ReplayDelivery) Validate() error {
	if err := checkService(payloadReplayDelivery, d.Service); err != nil {
		return err
	}
	if err := checkText(payloadReplayDelivery, HeaderDLQID, d.DLQID, MaxKeyLen, true, false); err != nil {
		return err
	}
	if d.Attempt < 1 {
		return fieldErr(ErrInvalidValue, payloadReplayDelivery, HeaderAttempt, "is %d; attempts count from 1", d.Attempt)
	}
	if err := checkText(payloadReplayDelivery, HeaderOperation, d.Operation, MaxOperationLen, true, false); err != nil {
		return err
	}
	if err := checkText(payloadReplayDelivery, HeaderIdempotencyKey, d.IdempotencyKey, MaxKeyLen, false, false); err != nil {
		return err
	}
	if len(d.Request) > MaxRequestSize {
		return fmt.Errorf("%w: %s body is %d bytes, at most %d are allowed", ErrTooLarge, payloadReplayDelivery, len(d.Request), MaxRequestSize)
	}
	if len(d.Request) > 0 && !json.Valid(d.Request) {
		return fmt.Errorf("%w: %s body is not valid JSON", ErrBadJSON, payloadReplayDelivery)
	}
	return nil
}

// parseReplayDelivery reads the Baldur-* headers and the body of a delivery
// for service svc.
func parseReplayDelivery(svc string, h nats.Header, body []byte) (ReplayDelivery, error) {
	d := ReplayDelivery{Service: svc, Request: body}
	var err error
	var ok bool
	if d.DLQID, ok, err = header(h, HeaderDLQID); err != nil {
		return ReplayDelivery{}, err
	} else if !ok || d.DLQID == "" {
		return ReplayDelivery{}, fmt.Errorf("%w: %s is required on a replay delivery", ErrMissingHeader, HeaderDLQID)
	}
	attempt, ok, err := header(h, HeaderAttempt)
	if err != nil {
		return ReplayDelivery{}, err
	}
	if !ok || attempt == "" {
		return ReplayDelivery{}, fmt.Errorf("%w: %s is required on a replay delivery", ErrMissingHeader, HeaderAttempt)
	}
	if d.Attempt, err = strconv.Atoi(attempt); err != nil || d.Attempt < 1 {
		return ReplayDelivery{}, fmt.Errorf("%w: %s is %q; want an integer from 1", ErrInvalidHeader, HeaderAttempt, clip(attempt, 32))
	}
	if d.Operation, ok, err = header(h, HeaderOperation); err != nil {
		return ReplayDelivery{}, err
	} else if !ok || d.Operation == "" {
		return ReplayDelivery{}, fmt.Errorf("%w: %s is required on a replay delivery", ErrMissingHeader, HeaderOperation)
	}
	if d.IdempotencyKey, _, err = header(h, HeaderIdempotencyKey); err != nil {
		return ReplayDelivery{}, err
	}
	if len(body) == 0 {
		d.Request = nil
	}
	if err := d.Validate(); err != nil {
		return ReplayDelivery{}, err
	}
	return d, nil
}

// Message is a decoded inbound message.
type Message struct {
	// Subject is the parsed subject.
	Subject Subject
	// Envelope is the CloudEvents context.
	Envelope Envelope
	// Payload is the decoded body, by subject: OutcomeReport, BreakerCommand,
	// GovernanceCommand, DeadLetter, ReplayDelivery, TransitionEvent,
	// ArchivedEvent (baldur.event.breaker.<svc>.archived),
	// ReplayEntryEvent (completed, failed, escalated), ReplayBlockedEvent,
	// ReplayBatchEvent, GovernanceChange, Rejected or SLABreachedEvent.
	Payload any
}

// TypeFor returns the ce-type a subject carries, or "" for the subjects that
// carry no CloudEvent (baldur.permit.<svc>, baldur.api.dlq.<op>).
func TypeFor(s Subject) Type {
	switch s.Kind {
	case SubjectOutcome:
		return TypeOutcome
	case SubjectControl:
		return TypeControl
	case SubjectGovernanceCommand:
		return TypeGovernance
	case SubjectDLQ:
		return TypeDLQ
	case SubjectReplay:
		return TypeReplay
	case SubjectBreakerEvent:
		return BreakerEvent(s.Name).Type()
	case SubjectReplayEvent:
		return ReplayEventKind(s.Name).Type()
	case SubjectGovernanceEvent:
		return TypeGovernanceChanged
	case SubjectRejectedEvent:
		return TypeRejected
	case SubjectDLQEvent:
		return DLQEventKind(s.Name).Type()
	}
	return ""
}

// Decode checks and decodes one message: the subject must be part of the
// contract, the envelope valid, ce-type the one the subject carries, the body
// within its limit and strictly valid, and a body's service, event, key or
// kind the subject's. Outcome reports also need ce-source, the reporting
// node. Every error wraps a sentinel of errors.go; NewRejected turns it into
// the Rejected event to publish.
func Decode(subject string, h nats.Header, body []byte) (Message, error) {
	s, err := ParseSubject(subject)
	if err != nil {
		return Message{}, err
	}
	want := TypeFor(s)
	if want == "" {
		return Message{}, fmt.Errorf("%w: %q carries no CloudEvent; decode its body with DecodePermitRequest or the DLQ endpoint's own type", ErrInvalidSubject, subject)
	}
	env, err := ParseEnvelope(h)
	if err != nil {
		return Message{}, err
	}
	if env.Type != want {
		return Message{}, fmt.Errorf("%w: ce-type %q sent on %q, which carries %q", ErrTypeMismatch, env.Type, subject, want)
	}
	m := Message{Subject: s, Envelope: env}
	switch s.Kind {
	case SubjectOutcome:
		if env.Source == "" {
			return Message{}, fmt.Errorf("%w: ce-source is required on outcome reports: it names the reporting node", ErrMissingHeader)
		}
		m.Payload, err = DecodeOutcome(body)
	case SubjectControl:
		m.Payload, err = DecodeControl(body)
	case SubjectGovernanceCommand:
		m.Payload, err = DecodeGovernance(body)
	case SubjectDLQ:
		m.Payload, err = DecodeDeadLetter(body)
	case SubjectReplay:
		m.Payload, err = parseReplayDelivery(s.Service, h, body)
	case SubjectBreakerEvent:
		if s.Name == string(BreakerArchived) {
			var ev ArchivedEvent
			if ev, err = DecodeArchivedEvent(body); err == nil {
				err = matchBody(subject, "service", ev.Service, s.Service)
			}
			m.Payload = ev
			break
		}
		var ev TransitionEvent
		if ev, err = DecodeTransitionEvent(body); err == nil {
			err = matchBody(subject, "service", ev.Service, s.Service)
			if err == nil {
				err = matchBody(subject, "from/to", string(ev.Event()), s.Name)
			}
		}
		m.Payload = ev
	case SubjectReplayEvent:
		m.Payload, err = decodeReplayEvent(subject, s, body)
	case SubjectGovernanceEvent:
		var g GovernanceChange
		if g, err = DecodeGovernanceChange(body); err == nil {
			err = matchBody(subject, "key", string(g.Key), s.Name)
		}
		m.Payload = g
	case SubjectRejectedEvent:
		var r Rejected
		if r, err = DecodeRejected(body); err == nil {
			err = matchBody(subject, "kind", string(r.Kind), s.Name)
		}
		m.Payload = r
	case SubjectDLQEvent:
		var e SLABreachedEvent
		if e, err = DecodeSLABreachedEvent(body); err == nil {
			err = matchBody(subject, "service", e.Service, s.Service)
		}
		m.Payload = e
	}
	if err != nil {
		return Message{}, err
	}
	return m, nil
}

func decodeReplayEvent(subject string, s Subject, body []byte) (any, error) {
	var (
		v   any
		svc string
		err error
	)
	switch ReplayEventKind(s.Name) {
	case ReplayBlocked:
		var e ReplayBlockedEvent
		e, err = DecodeReplayBlockedEvent(body)
		v, svc = e, e.Service
	case ReplayBatchCompleted:
		var e ReplayBatchEvent
		e, err = DecodeReplayBatchEvent(body)
		v, svc = e, e.Service
	default:
		var e ReplayEntryEvent
		e, err = DecodeReplayEntryEvent(body)
		v, svc = e, e.Service
	}
	if err != nil {
		return nil, err
	}
	return v, matchBody(subject, "service", svc, s.Service)
}

func matchBody(subject, field, got, want string) error {
	if got != want {
		return fmt.Errorf("%w: body %s %q does not match subject %q", ErrTypeMismatch, field, clip(got, 64), subject)
	}
	return nil
}
