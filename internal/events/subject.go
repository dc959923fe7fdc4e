package events

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/baldurfleet/baldur/internal/domain"
)

// MaxServiceNameLen is the longest service name the contract accepts, in bytes.
const MaxServiceNameLen = 64

// Subject prefixes and fixed subjects of the contract (DESIGN §3).
const (
	// SubjectGovernance carries governance commands.
	SubjectGovernance = "baldur.governance"

	prefixOutcome         = "baldur.outcome."
	prefixControl         = "baldur.control."
	prefixDLQ             = "baldur.dlq."
	prefixReplay          = "baldur.replay."
	prefixPermit          = "baldur.permit."
	prefixAPIDLQ          = "baldur.api.dlq."
	prefixEvent           = "baldur.event."
	prefixBreakerEvent    = "baldur.event.breaker."
	prefixReplayEvent     = "baldur.event.replay."
	prefixGovernanceEvent = "baldur.event.governance."
	prefixRejectedEvent   = "baldur.event.rejected."
	prefixDLQEvent        = "baldur.event.dlq."
)

// Wildcard subjects for stream subjects, consumer filters and subscriptions.
// The per-service input filters end in ">" rather than "*" on purpose: a
// message published to a malformed subject such as "baldur.outcome.a.b" is
// then still captured by its stream, and the worker rejects it with a
// Rejected event instead of the message vanishing at the publisher.
const (
	// FilterOutcome matches every outcome report subject.
	FilterOutcome = "baldur.outcome.>"
	// FilterControl matches every breaker command subject.
	FilterControl = "baldur.control.>"
	// FilterDLQ matches every dead-letter subject (stream BALDUR_DLQ).
	FilterDLQ = "baldur.dlq.>"
	// FilterReplay matches every replay delivery subject.
	FilterReplay = "baldur.replay.*"
	// FilterPermit matches every half-open permit subject; breaker-workers
	// subscribe to it in a queue group.
	FilterPermit = "baldur.permit.*"
	// FilterAPIDLQ matches every DLQ endpoint of the baldur-dlq micro service.
	FilterAPIDLQ = "baldur.api.dlq.*"
	// FilterEvents matches every event (stream BALDUR_EVENTS).
	FilterEvents = "baldur.event.>"
	// FilterBreakerEvents matches every breaker transition event.
	FilterBreakerEvents = "baldur.event.breaker.>"
	// FilterReplayEvents matches every replay result event.
	FilterReplayEvents = "baldur.event.replay.>"
	// FilterGovernanceEvents matches every governance change event.
	FilterGovernanceEvents = "baldur.event.governance.*"
	// FilterRejectedEvents matches every rejected-input event.
	FilterRejectedEvents = "baldur.event.rejected.*"
	// FilterDLQEvents matches every dead-letter event (sla_breached).
	FilterDLQEvents = "baldur.event.dlq.>"
)

// Queue groups of the request/reply subjects.
const (
	// ReplayQueueGroup is the queue group services subscribe to
	// baldur.replay.<svc> in, so one instance handles each delivery.
	ReplayQueueGroup = "baldur-replay"
	// PermitQueueGroup is the queue group breaker-workers subscribe to
	// baldur.permit.* in, so one worker answers each permit request.
	PermitQueueGroup = "baldur-permit"
)

// InputSubjects are the subjects of stream BALDUR_INPUT.
var InputSubjects = []string{FilterOutcome, FilterControl, SubjectGovernance}

// DLQSubjects are the subjects of stream BALDUR_DLQ.
var DLQSubjects = []string{FilterDLQ}

// EventSubjects are the subjects of stream BALDUR_EVENTS.
var EventSubjects = []string{FilterEvents}

// ValidateServiceName reports whether name is a valid service name:
// ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$. The error wraps ErrInvalidName and says
// why: empty, too long (with the length), or which character at which byte
// position is not allowed. It does not allocate for a valid name.
func ValidateServiceName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: name is empty", ErrInvalidName)
	}
	if len(name) > MaxServiceNameLen {
		return fmt.Errorf("%w: name %q is %d bytes long, at most %d are allowed",
			ErrInvalidName, clip(name, 80), len(name), MaxServiceNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isAlnum(c) || (i > 0 && (c == '_' || c == '-')) {
			continue
		}
		if i == 0 && (c == '_' || c == '-') {
			return fmt.Errorf("%w: name %q starts with %q at position 0; the first character must be a letter or a digit",
				ErrInvalidName, name, c)
		}
		return fmt.Errorf("%w: name %q has %s at position %d; only A-Z, a-z, 0-9, '_' and '-' are allowed",
			ErrInvalidName, name, describeChar(name[i:]), i)
	}
	return nil
}

func isAlnum(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// describeChar names the character at the start of s for an error message.
func describeChar(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("the invalid UTF-8 byte %#02x", s[0])
	}
	if r < 0x20 || r == 0x7f || r > 0x7e {
		return fmt.Sprintf("the character %q (%U)", r, r)
	}
	return fmt.Sprintf("the character %q", r)
}

// clip shortens s to at most n bytes for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// perService builds prefix+svc after validating svc.
func perService(prefix, svc string) (string, error) {
	if err := ValidateServiceName(svc); err != nil {
		return "", err
	}
	return prefix + svc, nil
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

// OutcomeSubject returns baldur.outcome.<svc>. It allocates only the result.
func OutcomeSubject(svc string) (string, error) { return perService(prefixOutcome, svc) }

// MustOutcomeSubject is OutcomeSubject for names known to be valid; it panics
// otherwise.
func MustOutcomeSubject(svc string) string { return must(OutcomeSubject(svc)) }

// ControlSubject returns baldur.control.<svc>.
func ControlSubject(svc string) (string, error) { return perService(prefixControl, svc) }

// MustControlSubject is ControlSubject that panics on an invalid name.
func MustControlSubject(svc string) string { return must(ControlSubject(svc)) }

// DLQSubject returns baldur.dlq.<svc>.
func DLQSubject(svc string) (string, error) { return perService(prefixDLQ, svc) }

// MustDLQSubject is DLQSubject that panics on an invalid name.
func MustDLQSubject(svc string) string { return must(DLQSubject(svc)) }

// ReplaySubject returns baldur.replay.<svc>.
func ReplaySubject(svc string) (string, error) { return perService(prefixReplay, svc) }

// MustReplaySubject is ReplaySubject that panics on an invalid name.
func MustReplaySubject(svc string) string { return must(ReplaySubject(svc)) }

// PermitSubject returns baldur.permit.<svc>.
func PermitSubject(svc string) (string, error) { return perService(prefixPermit, svc) }

// MustPermitSubject is PermitSubject that panics on an invalid name.
func MustPermitSubject(svc string) string { return must(PermitSubject(svc)) }

// DLQOp is an endpoint of the baldur-dlq micro service.
type DLQOp string

// DLQ endpoints (baldur.api.dlq.<op>).
const (
	DLQOpList        DLQOp = "list"
	DLQOpGet         DLQOp = "get"
	DLQOpReplay      DLQOp = "replay"
	DLQOpReplayBatch DLQOp = "replay_batch"
	DLQOpRequeue     DLQOp = "requeue"
	DLQOpDiscard     DLQOp = "discard"
	DLQOpResolve     DLQOp = "resolve"
	DLQOpStats       DLQOp = "stats"
)

// DLQOps lists every DLQ endpoint.
var DLQOps = []DLQOp{DLQOpList, DLQOpGet, DLQOpReplay, DLQOpReplayBatch, DLQOpRequeue,
	DLQOpDiscard, DLQOpResolve, DLQOpStats}

// DLQServiceName is the name of the NATS micro service that serves the DLQ
// endpoints.
const DLQServiceName = "baldur-dlq"

// DLQEndpointGroup is the subject prefix of the DLQ endpoints, without the
// trailing dot, for micro.AddGroup.
const DLQEndpointGroup = "baldur.api.dlq"

// Valid reports whether op is a known endpoint.
func (op DLQOp) Valid() bool { return oneOf(op, DLQOps) }

// APIDLQSubject returns baldur.api.dlq.<op>.
func APIDLQSubject(op DLQOp) (string, error) {
	if !op.Valid() {
		return "", fmt.Errorf("%w: unknown DLQ endpoint %q (want one of %s)", ErrInvalidSubject, clip(string(op), 64), list(DLQOps))
	}
	return prefixAPIDLQ + string(op), nil
}

// BreakerEvent names a breaker event subject's last token.
type BreakerEvent string

// Breaker events.
const (
	BreakerOpened      BreakerEvent = "opened"
	BreakerHalfOpened  BreakerEvent = "half_opened"
	BreakerClosed      BreakerEvent = "closed"
	BreakerModeChanged BreakerEvent = "mode_changed"
	// BreakerArchived is not a transition: a cell-scoped breaker whose cell
	// no longer owns its service was deleted (ce-type
	// baldur.breaker.archived.v1, body ArchivedEvent).
	BreakerArchived BreakerEvent = "archived"
)

// BreakerEvents lists every breaker event.
var BreakerEvents = []BreakerEvent{BreakerOpened, BreakerHalfOpened, BreakerClosed, BreakerModeChanged, BreakerArchived}

// Valid reports whether e is a known breaker event.
func (e BreakerEvent) Valid() bool { return oneOf(e, BreakerEvents) }

// Type returns the ce-type of the event: baldur.breaker.archived.v1 for
// archived, baldur.breaker.transition.v1 for the transitions.
func (e BreakerEvent) Type() Type {
	if e == BreakerArchived {
		return TypeBreakerArchived
	}
	return TypeBreakerTransition
}

// BreakerEventFor returns the event of a transition to state to: opened,
// half_opened or closed. A transition that leaves the state as it was (a mode
// change only) is mode_changed.
func BreakerEventFor(from, to domain.State) BreakerEvent {
	return BreakerEvent(domain.Transition{From: from, To: to}.Kind())
}

// BreakerEventSubject returns baldur.event.breaker.<svc>.<event>.
func BreakerEventSubject(svc string, ev BreakerEvent) (string, error) {
	if err := ValidateServiceName(svc); err != nil {
		return "", err
	}
	if !ev.Valid() {
		return "", fmt.Errorf("%w: unknown breaker event %q (want one of %s)", ErrInvalidSubject, clip(string(ev), 64), list(BreakerEvents))
	}
	return prefixBreakerEvent + svc + "." + string(ev), nil
}

// BreakerEventFilter returns baldur.event.breaker.<svc>.*, every breaker event
// of one service.
func BreakerEventFilter(svc string) (string, error) {
	if err := ValidateServiceName(svc); err != nil {
		return "", err
	}
	return prefixBreakerEvent + svc + ".*", nil
}

// ReplayEventKind names a replay event subject's last token.
type ReplayEventKind string

// Replay events.
const (
	ReplayCompleted      ReplayEventKind = "completed"
	ReplayFailed         ReplayEventKind = "failed"
	ReplayEscalated      ReplayEventKind = "escalated"
	ReplayBlocked        ReplayEventKind = "blocked"
	ReplayBatchCompleted ReplayEventKind = "batch_completed"
)

// ReplayEventKinds lists every replay event.
var ReplayEventKinds = []ReplayEventKind{ReplayCompleted, ReplayFailed, ReplayEscalated,
	ReplayBlocked, ReplayBatchCompleted}

// Valid reports whether k is a known replay event.
func (k ReplayEventKind) Valid() bool { return oneOf(k, ReplayEventKinds) }

// Type returns the ce-type of the event: baldur.replay.<kind>.v1.
func (k ReplayEventKind) Type() Type {
	switch k {
	case ReplayCompleted:
		return TypeReplayCompleted
	case ReplayFailed:
		return TypeReplayFailed
	case ReplayEscalated:
		return TypeReplayEscalated
	case ReplayBlocked:
		return TypeReplayBlocked
	case ReplayBatchCompleted:
		return TypeReplayBatchCompleted
	}
	return ""
}

// ReplayEventSubject returns baldur.event.replay.<svc>.<kind>.
func ReplayEventSubject(svc string, kind ReplayEventKind) (string, error) {
	if err := ValidateServiceName(svc); err != nil {
		return "", err
	}
	if !kind.Valid() {
		return "", fmt.Errorf("%w: unknown replay event %q (want one of %s)", ErrInvalidSubject, clip(string(kind), 64), list(ReplayEventKinds))
	}
	return prefixReplayEvent + svc + "." + string(kind), nil
}

// ReplayEventFilter returns baldur.event.replay.<svc>.*, every replay event of
// one service.
func ReplayEventFilter(svc string) (string, error) {
	if err := ValidateServiceName(svc); err != nil {
		return "", err
	}
	return prefixReplayEvent + svc + ".*", nil
}

// GovernanceKey is a key of KV bucket baldur_governance and the last token of
// a governance event subject.
type GovernanceKey string

// Governance keys.
const (
	GovernanceKillSwitch     GovernanceKey = "kill_switch"
	GovernanceEmergencyLevel GovernanceKey = "emergency_level"
	GovernanceErrorBudget    GovernanceKey = "error_budget"
)

// GovernanceKeys lists the governance keys that have change events.
var GovernanceKeys = []GovernanceKey{GovernanceKillSwitch, GovernanceEmergencyLevel, GovernanceErrorBudget}

// Valid reports whether k is a known governance key.
func (k GovernanceKey) Valid() bool { return oneOf(k, GovernanceKeys) }

// GovernanceEventSubject returns baldur.event.governance.<key>.
func GovernanceEventSubject(key GovernanceKey) (string, error) {
	if !key.Valid() {
		return "", fmt.Errorf("%w: unknown governance key %q (want one of %s)", ErrInvalidSubject, clip(string(key), 64), list(GovernanceKeys))
	}
	return prefixGovernanceEvent + string(key), nil
}

// DLQEventKind names a dead-letter event subject's last token.
type DLQEventKind string

// Dead-letter events.
const (
	// DLQSLABreached: an entry stayed pending longer than its domain's SLA.
	DLQSLABreached DLQEventKind = "sla_breached"
)

// DLQEventKinds lists every dead-letter event.
var DLQEventKinds = []DLQEventKind{DLQSLABreached}

// Valid reports whether k is a known dead-letter event.
func (k DLQEventKind) Valid() bool { return oneOf(k, DLQEventKinds) }

// Type returns the ce-type of the event.
func (k DLQEventKind) Type() Type {
	if k == DLQSLABreached {
		return TypeDLQSLABreached
	}
	return ""
}

// DLQEventSubject returns baldur.event.dlq.<svc>.<kind>.
func DLQEventSubject(svc string, kind DLQEventKind) (string, error) {
	if err := ValidateServiceName(svc); err != nil {
		return "", err
	}
	if !kind.Valid() {
		return "", fmt.Errorf("%w: unknown dead-letter event %q (want one of %s)", ErrInvalidSubject, clip(string(kind), 64), list(DLQEventKinds))
	}
	return prefixDLQEvent + svc + "." + string(kind), nil
}

// RejectedKind classifies a refused input; it is the last token of
// baldur.event.rejected.<kind>.
type RejectedKind string

// Rejected kinds.
const (
	RejectedOutcome     RejectedKind = "outcome"
	RejectedControl     RejectedKind = "control"
	RejectedGovernance  RejectedKind = "governance"
	RejectedDLQ         RejectedKind = "dlq"
	RejectedReplay      RejectedKind = "replay"
	RejectedReplayReply RejectedKind = "replay_reply"
	RejectedPermit      RejectedKind = "permit"
	RejectedEvent       RejectedKind = "event"
	RejectedConfig      RejectedKind = "config"
	RejectedUnknown     RejectedKind = "unknown"
)

// RejectedKinds lists every rejected kind.
var RejectedKinds = []RejectedKind{RejectedOutcome, RejectedControl, RejectedGovernance,
	RejectedDLQ, RejectedReplay, RejectedReplayReply, RejectedPermit, RejectedEvent,
	RejectedConfig, RejectedUnknown}

// Valid reports whether k is a known rejected kind.
func (k RejectedKind) Valid() bool { return oneOf(k, RejectedKinds) }

// RejectedSubject returns baldur.event.rejected.<kind>.
func RejectedSubject(kind RejectedKind) (string, error) {
	if !kind.Valid() {
		return "", fmt.Errorf("%w: unknown rejected kind %q (want one of %s)", ErrInvalidSubject, clip(string(kind), 64), list(RejectedKinds))
	}
	return prefixRejectedEvent + string(kind), nil
}

// SubjectKind says which part of the contract a subject belongs to.
type SubjectKind uint8

// Subject kinds.
const (
	SubjectUnknown SubjectKind = iota
	SubjectOutcome
	SubjectControl
	SubjectGovernanceCommand
	SubjectDLQ
	SubjectReplay
	SubjectPermit
	SubjectAPIDLQ
	SubjectBreakerEvent
	SubjectReplayEvent
	SubjectGovernanceEvent
	SubjectRejectedEvent
	SubjectDLQEvent
)

var subjectKindNames = [...]string{"unknown", "outcome", "control", "governance", "dlq",
	"replay", "permit", "api.dlq", "event.breaker", "event.replay", "event.governance",
	"event.rejected", "event.dlq"}

// String names the kind.
func (k SubjectKind) String() string {
	if int(k) < len(subjectKindNames) {
		return subjectKindNames[k]
	}
	return fmt.Sprintf("SubjectKind(%d)", uint8(k))
}

// Subject is a parsed subject of the contract.
type Subject struct {
	// Kind is the subject's part of the contract.
	Kind SubjectKind
	// Service is the service name of per-service subjects; empty for
	// baldur.governance, baldur.api.dlq.<op>, governance and rejected events.
	Service string
	// Name is the last token of subjects that end in a name: the DLQ endpoint,
	// the breaker, replay or dead-letter event, the governance key or the
	// rejected kind.
	Name string
}

// String rebuilds the subject.
func (s Subject) String() string {
	switch s.Kind {
	case SubjectOutcome:
		return prefixOutcome + s.Service
	case SubjectControl:
		return prefixControl + s.Service
	case SubjectGovernanceCommand:
		return SubjectGovernance
	case SubjectDLQ:
		return prefixDLQ + s.Service
	case SubjectReplay:
		return prefixReplay + s.Service
	case SubjectPermit:
		return prefixPermit + s.Service
	case SubjectAPIDLQ:
		return prefixAPIDLQ + s.Name
	case SubjectBreakerEvent:
		return prefixBreakerEvent + s.Service + "." + s.Name
	case SubjectReplayEvent:
		return prefixReplayEvent + s.Service + "." + s.Name
	case SubjectGovernanceEvent:
		return prefixGovernanceEvent + s.Name
	case SubjectRejectedEvent:
		return prefixRejectedEvent + s.Name
	case SubjectDLQEvent:
		return prefixDLQEvent + s.Service + "." + s.Name
	}
	return ""
}

// ParseSubject parses a subject of the contract. The error wraps
// ErrInvalidSubject (and ErrInvalidName for a malformed service name) and says
// which token is wrong. It does not allocate for a valid subject: Service and
// Name are substrings of subject.
func ParseSubject(subject string) (Subject, error) {
	rest, ok := strings.CutPrefix(subject, "baldur.")
	if !ok {
		return Subject{}, fmt.Errorf("%w: %q does not start with \"baldur.\"", ErrInvalidSubject, clip(subject, 128))
	}
	head, tail, _ := strings.Cut(rest, ".")
	switch head {
	case "outcome":
		return serviceSubject(subject, SubjectOutcome, tail)
	case "control":
		return serviceSubject(subject, SubjectControl, tail)
	case "dlq":
		return serviceSubject(subject, SubjectDLQ, tail)
	case "replay":
		return serviceSubject(subject, SubjectReplay, tail)
	case "permit":
		return serviceSubject(subject, SubjectPermit, tail)
	case "governance":
		if rest != "governance" {
			return Subject{}, fmt.Errorf("%w: %q: governance commands go to %q, with no further token", ErrInvalidSubject, clip(subject, 128), SubjectGovernance)
		}
		return Subject{Kind: SubjectGovernanceCommand}, nil
	case "api":
		op, ok := strings.CutPrefix(tail, "dlq.")
		if !ok || !DLQOp(op).Valid() {
			return Subject{}, fmt.Errorf("%w: %q is not a DLQ endpoint (want baldur.api.dlq.<%s>)", ErrInvalidSubject, clip(subject, 128), list(DLQOps))
		}
		return Subject{Kind: SubjectAPIDLQ, Name: op}, nil
	case "event":
		return parseEventSubject(subject, tail)
	}
	return Subject{}, fmt.Errorf("%w: %q: unknown subject family %q", ErrInvalidSubject, clip(subject, 128), clip(head, 32))
}

func serviceSubject(subject string, kind SubjectKind, svc string) (Subject, error) {
	if err := ValidateServiceName(svc); err != nil {
		return Subject{}, fmt.Errorf("%w: %q: %w", ErrInvalidSubject, clip(subject, 128), err)
	}
	return Subject{Kind: kind, Service: svc}, nil
}

func parseEventSubject(subject, rest string) (Subject, error) {
	family, tail, _ := strings.Cut(rest, ".")
	switch family {
	case "breaker", "replay", "dlq":
		i := strings.LastIndexByte(tail, '.')
		if i < 0 {
			return Subject{}, fmt.Errorf("%w: %q: want baldur.event.%s.<service>.<event>", ErrInvalidSubject, clip(subject, 128), family)
		}
		svc, name := tail[:i], tail[i+1:]
		if err := ValidateServiceName(svc); err != nil {
			return Subject{}, fmt.Errorf("%w: %q: %w", ErrInvalidSubject, clip(subject, 128), err)
		}
		if family == "dlq" {
			if !DLQEventKind(name).Valid() {
				return Subject{}, fmt.Errorf("%w: %q: unknown dead-letter event %q (want one of %s)", ErrInvalidSubject, clip(subject, 128), clip(name, 32), list(DLQEventKinds))
			}
			return Subject{Kind: SubjectDLQEvent, Service: svc, Name: name}, nil
		}
		if family == "breaker" {
			if !BreakerEvent(name).Valid() {
				return Subject{}, fmt.Errorf("%w: %q: unknown breaker event %q (want one of %s)", ErrInvalidSubject, clip(subject, 128), clip(name, 32), list(BreakerEvents))
			}
			return Subject{Kind: SubjectBreakerEvent, Service: svc, Name: name}, nil
		}
		if !ReplayEventKind(name).Valid() {
			return Subject{}, fmt.Errorf("%w: %q: unknown replay event %q (want one of %s)", ErrInvalidSubject, clip(subject, 128), clip(name, 32), list(ReplayEventKinds))
		}
		return Subject{Kind: SubjectReplayEvent, Service: svc, Name: name}, nil
	case "governance":
		if !GovernanceKey(tail).Valid() {
			return Subject{}, fmt.Errorf("%w: %q: unknown governance key %q (want one of %s)", ErrInvalidSubject, clip(subject, 128), clip(tail, 32), list(GovernanceKeys))
		}
		return Subject{Kind: SubjectGovernanceEvent, Name: tail}, nil
	case "rejected":
		if !RejectedKind(tail).Valid() {
			return Subject{}, fmt.Errorf("%w: %q: unknown rejected kind %q (want one of %s)", ErrInvalidSubject, clip(subject, 128), clip(tail, 32), list(RejectedKinds))
		}
		return Subject{Kind: SubjectRejectedEvent, Name: tail}, nil
	}
	return Subject{}, fmt.Errorf("%w: %q: unknown event family %q (want breaker, replay, dlq, governance or rejected)", ErrInvalidSubject, clip(subject, 128), clip(family, 32))
}

func oneOf[T ~string](v T, all []T) bool {
	for _, k := range all {
		if v == k {
			return true
		}
	}
	return false
}

func list[T ~string](all []T) string {
	var b strings.Builder
	for i, k := range all {
		if i > 0 {
			b.WriteByte('|')
		}
		b.WriteString(string(k))
	}
	return b.String()
}
