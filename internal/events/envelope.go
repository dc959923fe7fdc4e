package events

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
)

// Header names of the CloudEvents 1.0 NATS binding (binary mode) and of
// JetStream de-duplication.
const (
	HeaderSpecVersion = "ce-specversion"
	HeaderType        = "ce-type"
	HeaderID          = "ce-id"
	HeaderSource      = "ce-source"
	HeaderTime        = "ce-time"
	HeaderContentType = "content-type"
	// HeaderMsgID is JetStream's de-duplication header; it equals ce-id except
	// on transition events, where it is "<svc>.<generation>", and archived
	// events, "<svc>.<generation>.archived".
	HeaderMsgID = nats.MsgIdHdr
)

// SpecVersion is the only CloudEvents version accepted.
const SpecVersion = "1.0"

// ContentTypeJSON is the content-type of every body.
const ContentTypeJSON = "application/json"

// MaxSourceLen is the longest ce-source (node id) accepted, in bytes.
const MaxSourceLen = 256

// Type is a CloudEvents ce-type of the contract.
type Type string

// The ce-types of the contract (DESIGN §3).
const (
	TypeOutcome           Type = "baldur.outcome.v1"
	TypeControl           Type = "baldur.control.v1"
	TypeGovernance        Type = "baldur.governance.v1"
	TypeDLQ               Type = "baldur.dlq.v1"
	TypeReplay            Type = "baldur.replay.v1"
	TypeBreakerTransition Type = "baldur.breaker.transition.v1"
	// TypeBreakerArchived is the ce-type of baldur.event.breaker.<svc>.archived.
	TypeBreakerArchived      Type = "baldur.breaker.archived.v1"
	TypeReplayCompleted      Type = "baldur.replay.completed.v1"
	TypeReplayFailed         Type = "baldur.replay.failed.v1"
	TypeReplayEscalated      Type = "baldur.replay.escalated.v1"
	TypeReplayBlocked        Type = "baldur.replay.blocked.v1"
	TypeReplayBatchCompleted Type = "baldur.replay.batch_completed.v1"
	TypeGovernanceChanged    Type = "baldur.governance.changed.v1"
	TypeRejected             Type = "baldur.rejected.v1"
	// TypeDLQSLABreached is the ce-type of baldur.event.dlq.<svc>.sla_breached.
	TypeDLQSLABreached Type = "baldur.dlq.sla_breached.v1"
)

// Types lists every ce-type.
var Types = []Type{TypeOutcome, TypeControl, TypeGovernance, TypeDLQ, TypeReplay,
	TypeBreakerTransition, TypeReplayCompleted, TypeReplayFailed, TypeReplayEscalated,
	TypeReplayBlocked, TypeReplayBatchCompleted, TypeGovernanceChanged, TypeRejected, TypeDLQSLABreached,
	TypeBreakerArchived}

// Valid reports whether t is a known ce-type.
func (t Type) Valid() bool { return oneOf(t, Types) }

// Envelope is the CloudEvents context of a message, carried in NATS headers.
type Envelope struct {
	// Type is ce-type.
	Type Type
	// ID is ce-id, a UUID in canonical lowercase form.
	ID string
	// Source is ce-source: the publishing node's id. Optional, except on
	// outcome reports where it names the reporting node.
	Source string
	// Time is ce-time; the zero time means absent.
	Time time.Time
	// SpecVersion is ce-specversion; Header writes SpecVersion when empty.
	SpecVersion string
	// MsgID is the Nats-Msg-Id when it is not ID (transition and archived
	// events, see TransitionMsgID and ArchivedMsgID); empty means
	// Nats-Msg-Id = ID.
	MsgID string
}

// NewEnvelope returns the envelope of a new message. The id and the time are
// the caller's, so that tests and retries are deterministic.
func NewEnvelope(typ Type, id uuid.UUID, source string, at time.Time) Envelope {
	return Envelope{Type: typ, ID: id.String(), Source: source, Time: at, SpecVersion: SpecVersion}
}

// NewEnvelopeRandomID is NewEnvelope with a random (version 4) id.
func NewEnvelopeRandomID(typ Type, source string, at time.Time) Envelope {
	return NewEnvelope(typ, uuid.New(), source, at)
}

// transitionNamespace is the UUID namespace of transition event ids.
var transitionNamespace = uuid.MustParse("6f1c2a8e-5b0d-4d61-9a43-2b7f0c9e8d15")

// TransitionMsgID returns the Nats-Msg-Id of the transition of service svc to
// generation gen: "<svc>.<generation>". Every writer that emits the same
// transition uses the same id, so JetStream keeps exactly one.
func TransitionMsgID(svc string, gen uint64) string {
	return svc + "." + strconv.FormatUint(gen, 10)
}

// TransitionEventID returns the ce-id of the transition of svc to generation
// gen: a name-based (version 5) UUID of TransitionMsgID, so a transition
// re-emitted after a crash carries the same ce-id too.
func TransitionEventID(svc string, gen uint64) uuid.UUID {
	return uuid.NewSHA1(transitionNamespace, []byte(TransitionMsgID(svc, gen)))
}

// NewTransitionEnvelope returns the envelope of a transition event: ce-type
// baldur.breaker.transition.v1, ce-id TransitionEventID, ce-time ev.At and
// Nats-Msg-Id TransitionMsgID.
func NewTransitionEnvelope(source string, ev TransitionEvent) Envelope {
	env := NewEnvelope(TypeBreakerTransition, TransitionEventID(ev.Service, ev.Generation), source, ev.At)
	env.MsgID = TransitionMsgID(ev.Service, ev.Generation)
	return env
}

// archivedNamespace is the UUID namespace of archived event ids.
var archivedNamespace = uuid.MustParse("9d3e6b1a-47c2-4f08-b5e9-0a6c1d2f7e43")

// ArchivedMsgID returns the Nats-Msg-Id of the archived event of breaker svc
// at generation gen: "<svc>.<generation>.archived". A worker that archives
// the same breaker again after a crash uses the same id, so JetStream keeps
// one event.
func ArchivedMsgID(svc string, gen uint64) string {
	return TransitionMsgID(svc, gen) + "." + string(BreakerArchived)
}

// ArchivedEventID returns the ce-id of the archived event of svc at
// generation gen: a name-based (version 5) UUID of ArchivedMsgID.
func ArchivedEventID(svc string, gen uint64) uuid.UUID {
	return uuid.NewSHA1(archivedNamespace, []byte(ArchivedMsgID(svc, gen)))
}

// NewArchivedEnvelope returns the envelope of an archived event: ce-type
// baldur.breaker.archived.v1, ce-id ArchivedEventID, ce-time ev.At and
// Nats-Msg-Id ArchivedMsgID.
func NewArchivedEnvelope(source string, ev ArchivedEvent) Envelope {
	env := NewEnvelope(TypeBreakerArchived, ArchivedEventID(ev.Service, ev.Generation), source, ev.At)
	env.MsgID = ArchivedMsgID(ev.Service, ev.Generation)
	return env
}

// Header returns the NATS headers of e: ce-specversion, ce-type, ce-id,
// ce-source and ce-time when set (ce-time in RFC 3339 with nanoseconds, UTC),
// content-type application/json and Nats-Msg-Id.
func (e Envelope) Header() nats.Header {
	h := make(nats.Header, 7)
	e.SetHeader(h)
	return h
}

// SetHeader writes the headers of e into h, replacing those already there.
func (e Envelope) SetHeader(h nats.Header) {
	sv := e.SpecVersion
	if sv == "" {
		sv = SpecVersion
	}
	h[HeaderSpecVersion] = []string{sv}
	h[HeaderType] = []string{string(e.Type)}
	h[HeaderID] = []string{e.ID}
	if e.Source != "" {
		h[HeaderSource] = []string{e.Source}
	}
	if !e.Time.IsZero() {
		h[HeaderTime] = []string{e.Time.UTC().Format(time.RFC3339Nano)}
	}
	h[HeaderContentType] = []string{ContentTypeJSON}
	msgID := e.MsgID
	if msgID == "" {
		msgID = e.ID
	}
	h[HeaderMsgID] = []string{msgID}
}

// header returns the single value of header key. The exact (lowercase) name
// is looked up first; only when it is absent is a case-insensitive match
// accepted, since other languages' clients may capitalise header names. More
// than one value under one name is refused.
func header(h nats.Header, key string) (string, bool, error) {
	vals, found := h[key]
	if !found {
		for k, v := range h {
			if strings.EqualFold(k, key) {
				if found {
					return "", true, fmt.Errorf("%w: %s is given more than once, under different spellings", ErrInvalidHeader, key)
				}
				vals, found = v, true
			}
		}
	}
	if !found || len(vals) == 0 {
		return "", found, nil
	}
	if len(vals) > 1 {
		return "", true, fmt.Errorf("%w: %s is given %d times", ErrInvalidHeader, key, len(vals))
	}
	return vals[0], true, nil
}

// ParseEnvelope reads and checks the CloudEvents headers of a message. ce-type
// and ce-id are required; ce-type must be one of Types; ce-id must be a UUID
// in the 8-4-4-4-12 form (returned lowercase), not the nil UUID;
// ce-specversion, when present, must be 1.0; ce-time, when present, must be
// RFC 3339; content-type, when present, must be application/json; ce-source
// must be at most MaxSourceLen printable bytes; and Nats-Msg-Id, when present,
// must equal ce-id except on transition events. Errors wrap ErrMissingHeader,
// ErrInvalidHeader or ErrUnknownType.
func ParseEnvelope(h nats.Header) (Envelope, error) {
	var e Envelope

	sv, ok, err := header(h, HeaderSpecVersion)
	if err != nil {
		return Envelope{}, err
	}
	if ok && sv != SpecVersion {
		return Envelope{}, fmt.Errorf("%w: ce-specversion is %q, only %q is supported", ErrInvalidHeader, clip(sv, 32), SpecVersion)
	}
	e.SpecVersion = SpecVersion

	typ, _, err := header(h, HeaderType)
	if err != nil {
		return Envelope{}, err
	}
	if typ == "" {
		return Envelope{}, fmt.Errorf("%w: ce-type is required", ErrMissingHeader)
	}
	if !Type(typ).Valid() {
		return Envelope{}, fmt.Errorf("%w: %q", ErrUnknownType, clip(typ, 128))
	}
	e.Type = Type(typ)

	id, _, err := header(h, HeaderID)
	if err != nil {
		return Envelope{}, err
	}
	if id == "" {
		return Envelope{}, fmt.Errorf("%w: ce-id is required", ErrMissingHeader)
	}
	if e.ID, err = parseID(id); err != nil {
		return Envelope{}, err
	}

	src, _, err := header(h, HeaderSource)
	if err != nil {
		return Envelope{}, err
	}
	if len(src) > MaxSourceLen {
		return Envelope{}, fmt.Errorf("%w: ce-source is %d bytes long, at most %d are allowed", ErrInvalidHeader, len(src), MaxSourceLen)
	}
	if i := indexUnprintable(src); i >= 0 {
		return Envelope{}, fmt.Errorf("%w: ce-source has %s at position %d", ErrInvalidHeader, describeChar(src[i:]), i)
	}
	e.Source = src

	ts, ok, err := header(h, HeaderTime)
	if err != nil {
		return Envelope{}, err
	}
	if ok {
		t, perr := time.Parse(time.RFC3339Nano, ts)
		if perr != nil {
			return Envelope{}, fmt.Errorf("%w: ce-time %q is not an RFC 3339 time such as \"2026-01-02T15:04:05Z\"", ErrInvalidHeader, clip(ts, 64))
		}
		e.Time = t
	}

	ct, ok, err := header(h, HeaderContentType)
	if err != nil {
		return Envelope{}, err
	}
	if ok && !isJSONContentType(ct) {
		return Envelope{}, fmt.Errorf("%w: content-type is %q, only %q is supported", ErrInvalidHeader, clip(ct, 64), ContentTypeJSON)
	}

	msgID, ok, err := header(h, HeaderMsgID)
	if err != nil {
		return Envelope{}, err
	}
	if ok && !strings.EqualFold(msgID, e.ID) {
		if e.Type != TypeBreakerTransition && e.Type != TypeBreakerArchived {
			return Envelope{}, fmt.Errorf("%w: Nats-Msg-Id %q differs from ce-id %q", ErrInvalidHeader, clip(msgID, 64), e.ID)
		}
		e.MsgID = msgID
	}
	return e, nil
}

// parseID checks a ce-id and returns it in canonical lowercase form.
func parseID(id string) (string, error) {
	if len(id) != 36 {
		return "", fmt.Errorf("%w: ce-id %q is not a UUID (want the 36-character 8-4-4-4-12 form)", ErrInvalidHeader, clip(id, 64))
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return "", fmt.Errorf("%w: ce-id %q is not a UUID: %v", ErrInvalidHeader, id, err)
	}
	if u == uuid.Nil {
		return "", fmt.Errorf("%w: ce-id is the nil UUID", ErrInvalidHeader)
	}
	return u.String(), nil
}

// isJSONContentType accepts application/json with optional parameters
// ("application/json; charset=utf-8").
func isJSONContentType(ct string) bool {
	mt, params, _ := strings.Cut(ct, ";")
	if !strings.EqualFold(strings.TrimSpace(mt), ContentTypeJSON) {
		return false
	}
	params = strings.TrimSpace(params)
	if params == "" {
		return true
	}
	k, v, _ := strings.Cut(params, "=")
	return strings.EqualFold(strings.TrimSpace(k), "charset") && strings.EqualFold(strings.Trim(strings.TrimSpace(v), `"`), "utf-8")
}

// indexUnprintable returns the byte position of the first control character
// or invalid UTF-8 in s, or -1.
func indexUnprintable(s string) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			if c < 0x20 || c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || (r >= 0x80 && r < 0xa0) {
			return i
		}
		i += size
	}
	return -1
}
