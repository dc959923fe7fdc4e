package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// MaxBody returns the body limit of messages of ce-type t, and 0 for an
// unknown type.
func MaxBody(t Type) int {
	switch t {
	case TypeOutcome:
		return MaxOutcomeBody
	case TypeControl:
		return MaxCommandBody
	case TypeGovernance:
		return MaxGovernanceBody
	case TypeDLQ:
		return MaxDeadLetterBody
	case TypeReplay:
		return MaxRequestSize
	case TypeBreakerTransition, TypeBreakerArchived, TypeReplayCompleted, TypeReplayFailed, TypeReplayEscalated,
		TypeReplayBlocked, TypeReplayBatchCompleted, TypeGovernanceChanged, TypeRejected, TypeDLQSLABreached:
		return MaxEventBody
	}
	return 0
}

// NewMsg builds the message to publish: the subject, the envelope's headers
// and the payload as JSON. It applies the receiver's rules on the way out:
// the subject must carry env.Type, the payload must pass its Validate and fit
// the body limit. A ReplayDelivery payload becomes the Baldur-* headers and its
// request as the body. NewMsg does no I/O.
func NewMsg(subject string, env Envelope, payload any) (*nats.Msg, error) {
	s, err := ParseSubject(subject)
	if err != nil {
		return nil, err
	}
	if want := TypeFor(s); want == "" || want != env.Type {
		return nil, fmt.Errorf("%w: ce-type %q on %q, which carries %q", ErrTypeMismatch, env.Type, subject, want)
	}
	if _, err := parseID(env.ID); err != nil {
		return nil, err
	}
	if v, ok := payload.(validator); ok {
		if err := v.Validate(); err != nil {
			return nil, err
		}
	}
	msg := &nats.Msg{Subject: subject, Header: env.Header()}
	if d, ok := payload.(ReplayDelivery); ok {
		if d.Service != s.Service {
			return nil, matchBody(subject, "service", d.Service, s.Service)
		}
		d.SetHeader(msg.Header)
		msg.Data = d.Request
		return msg, nil
	}
	if msg.Data, err = json.Marshal(payload); err != nil {
		return nil, fmt.Errorf("%w: encoding %T: %v", ErrInvalidValue, payload, err)
	}
	if limit := MaxBody(env.Type); len(msg.Data) > limit {
		return nil, fmt.Errorf("%w: %T body is %d bytes, at most %d are allowed", ErrTooLarge, payload, len(msg.Data), limit)
	}
	return msg, nil
}

// RejectedKindFor returns the rejected kind of an input that arrived on
// subject, by its family: outcome, control, governance, dlq, replay, permit,
// event, or unknown. A worker that rejects a replay reply or a config value
// sets RejectedReplayReply or RejectedConfig itself.
func RejectedKindFor(subject string) RejectedKind {
	rest, ok := strings.CutPrefix(subject, "baldur.")
	if !ok {
		return RejectedUnknown
	}
	head, _, _ := strings.Cut(rest, ".")
	switch head {
	case "outcome":
		return RejectedOutcome
	case "control":
		return RejectedControl
	case "governance":
		return RejectedGovernance
	case "dlq":
		return RejectedDLQ
	case "replay":
		return RejectedReplay
	case "permit":
		return RejectedPermit
	case "event":
		return RejectedEvent
	}
	return RejectedUnknown
}

// maxRejectedReason bounds Rejected.Reason.
const maxRejectedReason = 1024

// NewRejected turns the error of a refused input into the Rejected event to
// publish on RejectedSubject(r.Kind): the kind (RejectedKindFor the subject),
// the error's code and message, the ce-id, ce-type and ce-source as received
// (clipped and made valid UTF-8, whatever they were), the body size, and at.
func NewRejected(subject string, h nats.Header, size int, err error, at time.Time) Rejected {
	r := Rejected{
		Kind:    RejectedKindFor(subject),
		Code:    ErrorCode(err),
		Subject: sanitize(subject, 256),
		Size:    size,
		At:      at,
	}
	if err != nil {
		r.Reason = sanitize(err.Error(), maxRejectedReason)
	}
	if r.Reason == "" {
		r.Reason = "rejected"
	}
	if h != nil {
		r.CEID = rawHeader(h, HeaderID)
		r.CEType = rawHeader(h, HeaderType)
		r.Source = rawHeader(h, HeaderSource)
	}
	return r
}

func rawHeader(h nats.Header, key string) string {
	v, _, err := header(h, key)
	if err != nil {
		v = h.Get(key)
	}
	return sanitize(v, 256)
}

// sanitize clips s to at most n bytes on a rune boundary, replacing invalid
// UTF-8 and control characters.
func sanitize(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
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
