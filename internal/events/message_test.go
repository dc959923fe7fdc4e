package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

func readGolden(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", file))
	require.NoError(t, err)
	return b
}

func headerOf(typ Type) nats.Header {
	return NewEnvelope(typ, testID, "node-1", testTime).Header()
}

func TestDecodeMessages(t *testing.T) {
	t.Parallel()
	tr := TransitionEvent{}
	require.NoError(t, json.Unmarshal(readGolden(t, "transition_event.json"), &tr))
	arch := ArchivedEvent{}
	require.NoError(t, json.Unmarshal(readGolden(t, "breaker_archived_event.json"), &arch))
	tests := []struct {
		subject string
		header  nats.Header
		golden  string
		want    any
	}{
		{"baldur.outcome.payments", headerOf(TypeOutcome), "outcome_report.json", OutcomeReport{}},
		{"baldur.control.payments", headerOf(TypeControl), "breaker_command_open.json", BreakerCommand{}},
		{"baldur.governance", headerOf(TypeGovernance), "governance_command.json", GovernanceCommand{}},
		{"baldur.dlq.payments", headerOf(TypeDLQ), "dead_letter.json", DeadLetter{}},
		{"baldur.event.breaker.payments.opened", NewTransitionEnvelope("w-1", tr).Header(), "transition_event.json", TransitionEvent{}},
		{"baldur.event.breaker.payments.closed", headerOf(TypeBreakerTransition), "transition_event_closed.json", TransitionEvent{}},
		{"baldur.event.breaker.payments--eu2.archived", NewArchivedEnvelope("w-1", arch).Header(), "breaker_archived_event.json", ArchivedEvent{}},
		{"baldur.event.replay.payments.completed", headerOf(TypeReplayCompleted), "replay_completed.json", ReplayEntryEvent{}},
		{"baldur.event.replay.payments.failed", headerOf(TypeReplayFailed), "replay_failed.json", ReplayEntryEvent{}},
		{"baldur.event.replay.payments.escalated", headerOf(TypeReplayEscalated), "replay_escalated.json", ReplayEntryEvent{}},
		{"baldur.event.replay.payments.blocked", headerOf(TypeReplayBlocked), "replay_blocked.json", ReplayBlockedEvent{}},
		{"baldur.event.replay.payments.batch_completed", headerOf(TypeReplayBatchCompleted), "replay_batch_completed.json", ReplayBatchEvent{}},
		{"baldur.event.governance.emergency_level", headerOf(TypeGovernanceChanged), "governance_change.json", GovernanceChange{}},
		{"baldur.event.rejected.outcome", headerOf(TypeRejected), "rejected.json", Rejected{}},
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			t.Parallel()
			m, err := Decode(tt.subject, tt.header, readGolden(t, tt.golden))
			require.NoError(t, err)
			require.Equal(t, tt.subject, m.Subject.String())
			require.IsType(t, tt.want, m.Payload)
			require.Equal(t, TypeFor(m.Subject), m.Envelope.Type)
		})
	}
}

func TestDecodeReplayDelivery(t *testing.T) {
	t.Parallel()
	env := NewEnvelope(TypeReplay, testID, "replay-worker-1", testTime)
	d := ReplayDelivery{Service: "payments", DLQID: testID.String(), Attempt: 2, Operation: "charge",
		IdempotencyKey: "order-123-charge", Request: json.RawMessage(`{"amount":1999}`)}
	msg, err := NewMsg("baldur.replay.payments", env, d)
	require.NoError(t, err)
	require.Equal(t, "2", msg.Header.Get(HeaderAttempt))
	require.Equal(t, "charge", msg.Header.Get(HeaderOperation))
	require.Equal(t, `{"amount":1999}`, string(msg.Data))

	m, err := Decode(msg.Subject, msg.Header, msg.Data)
	require.NoError(t, err)
	require.Equal(t, d, m.Payload)

	// No idempotency key, no body.
	d2 := ReplayDelivery{Service: "payments", DLQID: "e-1", Attempt: 1, Operation: "charge"}
	msg, err = NewMsg("baldur.replay.payments", env, d2)
	require.NoError(t, err)
	require.NotContains(t, msg.Header, HeaderIdempotencyKey)
	m, err = Decode(msg.Subject, msg.Header, msg.Data)
	require.NoError(t, err)
	require.Equal(t, d2, m.Payload)

	tests := []struct {
		name    string
		edit    func(h nats.Header) []byte
		wantErr error
		wantMsg string
	}{
		{"no dlq id", func(h nats.Header) []byte { delete(h, HeaderDLQID); return nil }, ErrMissingHeader, "Baldur-Dlq-Id is required"},
		{"no attempt", func(h nats.Header) []byte { delete(h, HeaderAttempt); return nil }, ErrMissingHeader, "Baldur-Attempt is required"},
		{"attempt zero", func(h nats.Header) []byte { h.Set(HeaderAttempt, "0"); return nil }, ErrInvalidHeader, `Baldur-Attempt is "0"`},
		{"attempt text", func(h nats.Header) []byte { h.Set(HeaderAttempt, "two"); return nil }, ErrInvalidHeader, "want an integer from 1"},
		{"no operation", func(h nats.Header) []byte { delete(h, HeaderOperation); return nil }, ErrMissingHeader, "Baldur-Operation is required"},
		{"body not JSON", func(nats.Header) []byte { return []byte("{") }, ErrBadJSON, "not valid JSON"},
		{"body too large", func(nats.Header) []byte { return []byte(`"` + strings.Repeat("x", MaxRequestSize) + `"`) }, ErrTooLarge, "at most 262144"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := env.Header()
			d.SetHeader(h)
			body := tt.edit(h)
			_, err := Decode("baldur.replay.payments", h, body)
			require.ErrorIs(t, err, tt.wantErr)
			require.ErrorContains(t, err, tt.wantMsg)
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	t.Parallel()
	outcome := readGolden(t, "outcome_report.json")
	noSource := headerOf(TypeOutcome)
	delete(noSource, HeaderSource)
	tests := []struct {
		name    string
		subject string
		header  nats.Header
		body    []byte
		wantErr error
		wantMsg string
	}{
		{"bad subject", "baldur.outcome.a.b", headerOf(TypeOutcome), outcome, ErrInvalidSubject, "position 1"},
		{"permit carries no CloudEvent", "baldur.permit.payments", headerOf(TypeOutcome), []byte(`{"node":"n"}`), ErrInvalidSubject, "DecodePermitRequest"},
		{"api carries no CloudEvent", "baldur.api.dlq.get", headerOf(TypeOutcome), []byte(`{}`), ErrInvalidSubject, "carries no CloudEvent"},
		{"no headers", "baldur.outcome.payments", nil, outcome, ErrMissingHeader, "ce-type is required"},
		{"unknown type", "baldur.outcome.payments", nats.Header{"ce-type": {"x.v1"}, "ce-id": {testID.String()}}, outcome, ErrUnknownType, `"x.v1"`},
		{"type mismatch", "baldur.outcome.payments", headerOf(TypeControl), outcome, ErrTypeMismatch, `ce-type "baldur.control.v1" sent on "baldur.outcome.payments", which carries "baldur.outcome.v1"`},
		{"replay event type mismatch", "baldur.event.replay.payments.failed", headerOf(TypeReplayCompleted), readGolden(t, "replay_failed.json"), ErrTypeMismatch, "baldur.replay.failed.v1"},
		{"outcome without ce-source", "baldur.outcome.payments", noSource, outcome, ErrMissingHeader, "ce-source is required on outcome reports"},
		{"outcome too large", "baldur.outcome.payments", headerOf(TypeOutcome), make([]byte, MaxOutcomeBody+1), ErrTooLarge, "8193 bytes"},
		{"outcome invalid", "baldur.outcome.payments", headerOf(TypeOutcome), []byte(`{"successes":-1}`), ErrInvalidValue, "successes"},
		{"control invalid", "baldur.control.payments", headerOf(TypeControl), []byte(`{"action":"open"}`), ErrMissingField, "actor"},
		{"governance invalid", "baldur.governance", headerOf(TypeGovernance), []byte(`{"action":"kill_switch_on"}`), ErrMissingField, "actor"},
		{"dlq invalid", "baldur.dlq.payments", headerOf(TypeDLQ), []byte(`{}`), ErrMissingField, "domain"},
		{"transition for another service", "baldur.event.breaker.orders.opened", headerOf(TypeBreakerTransition), readGolden(t, "transition_event.json"), ErrTypeMismatch, `body service "payments" does not match subject`},
		{"transition on the wrong event", "baldur.event.breaker.payments.closed", headerOf(TypeBreakerTransition), readGolden(t, "transition_event.json"), ErrTypeMismatch, `body from/to "opened"`},
		{"replay event for another service", "baldur.event.replay.orders.completed", headerOf(TypeReplayCompleted), readGolden(t, "replay_completed.json"), ErrTypeMismatch, "service"},
		{"blocked for another service", "baldur.event.replay.orders.blocked", headerOf(TypeReplayBlocked), readGolden(t, "replay_blocked.json"), ErrTypeMismatch, "service"},
		{"batch for another service", "baldur.event.replay.orders.batch_completed", headerOf(TypeReplayBatchCompleted), readGolden(t, "replay_batch_completed.json"), ErrTypeMismatch, "service"},
		{"governance change on another key", "baldur.event.governance.kill_switch", headerOf(TypeGovernanceChanged), readGolden(t, "governance_change.json"), ErrTypeMismatch, "key"},
		{"rejected of another kind", "baldur.event.rejected.dlq", headerOf(TypeRejected), readGolden(t, "rejected.json"), ErrTypeMismatch, "kind"},
		{"event too large", "baldur.event.rejected.outcome", headerOf(TypeRejected), make([]byte, MaxEventBody+1), ErrTooLarge, "at most 65536"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := Decode(tt.subject, tt.header, tt.body)
			require.ErrorIs(t, err, tt.wantErr)
			require.ErrorContains(t, err, tt.wantMsg)
			require.Equal(t, Message{}, m)
		})
	}
}

func TestEventRefusals(t *testing.T) {
	t.Parallel()
	at := `"at":"2026-03-14T15:09:26Z"`
	t.Run("transition", func(t *testing.T) {
		t.Parallel()
		base := `"service":"payments","from":"closed","to":"open","trigger":"auto","generation":1,` + at
		runRefusals(t, DecodeTransitionEvent, []refusal{
			{"bad service", `{"service":"a.b","from":"closed","to":"open","trigger":"auto",` + at + `}`, ErrInvalidValue, "service", "is invalid"},
			{"no service", `{"from":"closed","to":"open","trigger":"auto",` + at + `}`, ErrMissingField, "service", "is required"},
			{"bad state", `{"service":"p","from":"shut","to":"open","trigger":"auto",` + at + `}`, ErrInvalidValue, "from", `"shut"`},
			{"bad mode", `{` + base + `,"mode":"manual"}`, ErrInvalidValue, "mode", `"manual"`},
			{"bad trigger", `{"service":"p","from":"closed","to":"open","trigger":"bored",` + at + `}`, ErrInvalidValue, "trigger", `"bored"`},
			{"no time", `{"service":"p","from":"closed","to":"open","trigger":"auto"}`, ErrMissingField, "at", "is required"},
			{"bad time", `{"service":"p","from":"closed","to":"open","trigger":"auto","at":"now"}`, ErrInvalidValue, "", "at"},
			{"window rate", `{` + base + `,"window":{"failure_rate":101}}`, ErrInvalidValue, "window.failure_rate", "is 101"},
			{"window negative", `{` + base + `,"window":{"failures":-1}}`, ErrInvalidValue, "window", "negative"},
			{"window unknown field", `{` + base + `,"window":{"calls":1}}`, ErrUnknownField, "window.calls", "not part"},
		})
	})
	t.Run("archived", func(t *testing.T) {
		t.Parallel()
		base := `"service":"payments--eu2","cell":"eu2","state":"closed","mode":"auto","trigger":"cell_unmapped","actor":"wd","reason":"r",` + at
		runRefusals(t, DecodeArchivedEvent, []refusal{
			{"no cell in the name", `{"service":"payments","cell":"eu2","state":"closed","mode":"auto","trigger":"cell_unmapped","actor":"wd","reason":"r",` + at + `}`, ErrInvalidValue, "service", "not a cell-scoped breaker"},
			{"no cell in the name, cell_unmapped", `{"service":"payments","cell":"","state":"closed","mode":"auto","trigger":"cell_unmapped","actor":"wd","reason":"r",` + at + `}`, ErrInvalidValue, "service", "not a cell-scoped breaker"},
			{"idle with a cell the name lacks", `{"service":"payments","cell":"eu2","state":"closed","mode":"auto","trigger":"idle","actor":"wd","reason":"r",` + at + `}`, ErrInvalidValue, "cell", `names cell ""`},
			{"cell differs", `{"service":"payments--eu2","cell":"eu3","state":"closed","mode":"auto","trigger":"cell_unmapped","actor":"wd","reason":"r",` + at + `}`, ErrInvalidValue, "cell", `names cell "eu2"`},
			{"bad state", `{"service":"payments--eu2","cell":"eu2","state":"gone","mode":"auto","trigger":"cell_unmapped","actor":"wd","reason":"r",` + at + `}`, ErrInvalidValue, "state", `"gone"`},
			{"no mode", `{"service":"payments--eu2","cell":"eu2","state":"closed","trigger":"cell_unmapped","actor":"wd","reason":"r",` + at + `}`, ErrInvalidValue, "mode", `""`},
			{"transition trigger", `{"service":"payments--eu2","cell":"eu2","state":"closed","mode":"auto","trigger":"manual","actor":"wd","reason":"r",` + at + `}`, ErrInvalidValue, "trigger", "want cell_unmapped or idle"},
			{"no actor", `{"service":"payments--eu2","cell":"eu2","state":"closed","mode":"auto","trigger":"cell_unmapped","reason":"r",` + at + `}`, ErrMissingField, "actor", "is required"},
			{"no reason", `{"service":"payments--eu2","cell":"eu2","state":"closed","mode":"auto","trigger":"cell_unmapped","actor":"wd",` + at + `}`, ErrMissingField, "reason", "is required"},
			{"no time", `{"service":"payments--eu2","cell":"eu2","state":"closed","mode":"auto","trigger":"cell_unmapped","actor":"wd","reason":"r"}`, ErrMissingField, "at", "is required"},
			{"window unknown field", `{` + base + `,"window":{"calls":1}}`, ErrUnknownField, "window.calls", "not part"},
			{"unknown field", `{` + base + `,"state_json":{}}`, ErrUnknownField, "state_json", "not part"},
		})
	})
	t.Run("replay entry", func(t *testing.T) {
		t.Parallel()
		runRefusals(t, DecodeReplayEntryEvent, []refusal{
			{"no entry", `{"service":"p","status":"replayed",` + at + `}`, ErrMissingField, "entry_id", "is required"},
			{"bad status", `{"service":"p","entry_id":"e","status":"done",` + at + `}`, ErrInvalidValue, "status", `"done"`},
			{"negative attempt", `{"service":"p","entry_id":"e","status":"replayed","attempt":-1,` + at + `}`, ErrInvalidValue, "attempt", "-1"},
		})
	})
	t.Run("replay blocked", func(t *testing.T) {
		t.Parallel()
		runRefusals(t, DecodeReplayBlockedEvent, []refusal{
			{"bad gate", `{"service":"p","gate":"mood","reason":"r",` + at + `}`, ErrInvalidValue, "gate", `"mood"`},
			{"no reason", `{"service":"p","gate":"kill_switch",` + at + `}`, ErrMissingField, "reason", "is required"},
		})
	})
	t.Run("replay batch", func(t *testing.T) {
		t.Parallel()
		base := `"service":"p","trigger":"operator",` + at
		runRefusals(t, DecodeReplayBatchEvent, []refusal{
			{"bad trigger", `{"service":"p","trigger":"cron",` + at + `}`, ErrInvalidValue, "trigger", `"cron"`},
			{"counts do not add up", `{` + base + `,"total":3,"success_count":1}`, ErrInvalidValue, "total", "is 3, but success_count + failed_count + skipped_count is 1"},
			{"negative", `{` + base + `,"total":-1,"skipped_count":-1}`, ErrInvalidValue, "total", "negative"},
			{"escalated > failed", `{` + base + `,"total":1,"failed_count":1,"escalated_count":2}`, ErrInvalidValue, "escalated_count", "more than failed_count"},
			{"bad domain", `{` + base + `,"domains_processed":["payments"]}`, ErrInvalidValue, "domains_processed", `"payments"`},
			{"started after", `{` + base + `,"started_at":"2027-01-01T00:00:00Z"}`, ErrInvalidValue, "started_at", "after at"},
		})
	})
	t.Run("governance change", func(t *testing.T) {
		t.Parallel()
		runRefusals(t, DecodeGovernanceChange, []refusal{
			{"bad key", `{"key":"aggregate",` + at + `}`, ErrInvalidValue, "key", `"aggregate"`},
			{"no time", `{"key":"kill_switch"}`, ErrMissingField, "at", "is required"},
		})
	})
	t.Run("rejected", func(t *testing.T) {
		t.Parallel()
		runRefusals(t, DecodeRejected, []refusal{
			{"bad kind", `{"kind":"x","reason":"r",` + at + `}`, ErrInvalidValue, "kind", `"x"`},
			{"no reason", `{"kind":"dlq",` + at + `}`, ErrMissingField, "reason", "is required"},
			{"negative size", `{"kind":"dlq","reason":"r","size":-1,` + at + `}`, ErrInvalidValue, "size", "-1"},
		})
	})
}

func TestNewMsg(t *testing.T) {
	t.Parallel()
	env := NewEnvelope(TypeOutcome, testID, "node-1", testTime)
	msg, err := NewMsg(MustOutcomeSubject("payments"), env, OutcomeReport{Successes: 9, Failures: 1})
	require.NoError(t, err)
	require.Equal(t, `{"successes":9,"failures":1,"slow_calls":0,"trailing_failures":0}`, string(msg.Data))
	require.Equal(t, env.Header(), msg.Header)
	m, err := Decode(msg.Subject, msg.Header, msg.Data)
	require.NoError(t, err)
	require.Equal(t, OutcomeReport{Successes: 9, Failures: 1}, m.Payload)

	_, err = NewMsg(MustOutcomeSubject("payments"), env, OutcomeReport{})
	require.ErrorIs(t, err, ErrInvalidValue, "the payload is validated on the way out")
	_, err = NewMsg(MustControlSubject("payments"), env, BreakerCommand{})
	require.ErrorIs(t, err, ErrTypeMismatch)
	_, err = NewMsg("baldur.outcome.*", env, OutcomeReport{Successes: 1})
	require.ErrorIs(t, err, ErrInvalidSubject)
	_, err = NewMsg(MustPermitSubject("payments"), env, PermitRequest{Node: "n"})
	require.ErrorIs(t, err, ErrTypeMismatch, "permit requests carry no envelope")
	bad := env
	bad.ID = "x"
	_, err = NewMsg(MustOutcomeSubject("payments"), bad, OutcomeReport{Successes: 1})
	require.ErrorIs(t, err, ErrInvalidHeader)
	_, err = NewMsg(MustReplaySubject("orders"), NewEnvelope(TypeReplay, testID, "w", testTime),
		ReplayDelivery{Service: "payments", DLQID: "e", Attempt: 1, Operation: "op"})
	require.ErrorIs(t, err, ErrTypeMismatch)

	ft := map[string]int64{}
	for i := range 32 {
		ft[fmt.Sprintf("T%s%02d", strings.Repeat("x", 61), i)] = 1
	}
	_, err = NewMsg(MustOutcomeSubject("payments"), env, OutcomeReport{Failures: 32, TrailingFailures: 32, FailureTypes: ft})
	require.NoError(t, err)
	ev := TransitionEvent{Service: "payments", From: domain.StateClosed, To: domain.StateOpen, Trigger: domain.TriggerAuto, Generation: 1, At: testTime,
		Reason: strings.Repeat("r", MaxReasonLen)}
	_, err = NewMsg("baldur.event.breaker.payments.opened", NewTransitionEnvelope("w", ev), ev)
	require.NoError(t, err)
}

func TestNewRejected(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h := headerOf(TypeOutcome)
	body := []byte(`{"successes":5,"failures":3,"trailing_failures":5}`)
	_, err := Decode("baldur.outcome.payments", h, body)
	require.Error(t, err)
	r := NewRejected("baldur.outcome.payments", h, len(body), err, at)
	require.Equal(t, Rejected{Kind: RejectedOutcome, Code: "invalid_value", Subject: "baldur.outcome.payments",
		Reason: err.Error(), CEID: testID.String(), CEType: "baldur.outcome.v1", Source: "node-1", Size: len(body), At: at}, r)
	require.NoError(t, r.Validate())
	subj, err := RejectedSubject(r.Kind)
	require.NoError(t, err)
	require.Equal(t, "baldur.event.rejected.outcome", subj)

	// Garbage in the headers ends up clipped and valid in the event.
	h = nats.Header{"ce-id": {"bad\xff\x00" + strings.Repeat("x", 500)}, "ce-type": {"a", "b"}}
	r = NewRejected("baldur.dlq.x.y", h, 9, errors.New("boom"), at)
	require.Equal(t, RejectedDLQ, r.Kind)
	require.Equal(t, "internal", r.Code)
	require.LessOrEqual(t, len(r.CEID), 256)
	require.True(t, json.Valid(must2(json.Marshal(r))))
	require.NotContains(t, r.CEID, "\x00")
	require.Equal(t, "a", r.CEType)

	long := NewRejected("nats.x", nil, 0, errors.New(strings.Repeat("é", 1000)), at)
	require.Equal(t, RejectedUnknown, long.Kind)
	require.LessOrEqual(t, len(long.Reason), 1024)
	require.True(t, strings.HasSuffix(long.Reason, "é"), "clipped on a rune boundary")

	for subject, kind := range map[string]RejectedKind{
		"baldur.control.x": RejectedControl, "baldur.governance": RejectedGovernance,
		"baldur.replay.x": RejectedReplay, "baldur.permit.x": RejectedPermit,
		"baldur.event.breaker.x.opened": RejectedEvent, "baldur.zzz": RejectedUnknown,
	} {
		require.Equal(t, kind, RejectedKindFor(subject), subject)
	}
}

func must2(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestErrorCode(t *testing.T) {
	t.Parallel()
	require.Empty(t, ErrorCode(nil))
	require.Equal(t, "internal", ErrorCode(errors.New("x")))
	for _, c := range codes {
		require.Equal(t, c.code, ErrorCode(c.err))
		require.Equal(t, c.code, ErrorCode(fieldErr(c.err, "p", "f", "is bad")))
	}
	_, err := ParseSubject("baldur.outcome.a.b")
	require.Equal(t, "invalid_subject", ErrorCode(err), "a bad name in a subject is a subject problem first")
}

func BenchmarkDecodeOutcomeMessage(b *testing.B) {
	h := NewEnvelope(TypeOutcome, testID, "node-1", testTime).Header()
	body := []byte(`{"successes":1,"failures":0,"slow_calls":0,"trailing_failures":0}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode("baldur.outcome.payments", h, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelopeHeader(b *testing.B) {
	env := NewEnvelope(TypeOutcome, testID, "node-1", testTime)
	b.ReportAllocs()
	for b.Loop() {
		_ = env.Header()
	}
}
