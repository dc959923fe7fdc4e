package events

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

var (
	testID   = uuid.MustParse("0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f")
	testTime = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)
)

func TestEnvelopeHeaderRoundTrip(t *testing.T) {
	t.Parallel()
	env := NewEnvelope(TypeOutcome, testID, "node-1", testTime)
	h := env.Header()
	require.Equal(t, nats.Header{
		"ce-specversion": {"1.0"},
		"ce-type":        {"baldur.outcome.v1"},
		"ce-id":          {testID.String()},
		"ce-source":      {"node-1"},
		"ce-time":        {"2026-03-14T15:09:26.535897Z"},
		"content-type":   {"application/json"},
		"Nats-Msg-Id":    {testID.String()},
	}, h)
	got, err := ParseEnvelope(h)
	require.NoError(t, err)
	require.Equal(t, env, got)
}

func TestEnvelopeOptionalHeaders(t *testing.T) {
	t.Parallel()
	env := Envelope{Type: TypeControl, ID: testID.String()}
	h := env.Header()
	require.NotContains(t, h, HeaderSource)
	require.NotContains(t, h, HeaderTime)
	got, err := ParseEnvelope(nats.Header{"ce-type": {"baldur.control.v1"}, "ce-id": {testID.String()}})
	require.NoError(t, err, "only ce-type and ce-id are required")
	require.Equal(t, Envelope{Type: TypeControl, ID: testID.String(), SpecVersion: "1.0"}, got)
}

func TestEnvelopeRandomID(t *testing.T) {
	t.Parallel()
	a := NewEnvelopeRandomID(TypeDLQ, "n", testTime)
	b := NewEnvelopeRandomID(TypeDLQ, "n", testTime)
	require.NotEqual(t, a.ID, b.ID)
	_, err := ParseEnvelope(a.Header())
	require.NoError(t, err)
}

func TestTransitionEnvelope(t *testing.T) {
	t.Parallel()
	ev := TransitionEvent{Service: "payments", Generation: 7, At: testTime}
	env := NewTransitionEnvelope("worker-2", ev)
	require.Equal(t, "payments.7", env.MsgID)
	require.Equal(t, TransitionEventID("payments", 7).String(), env.ID, "ce-id is derived from the transition")
	require.Equal(t, env.ID, NewTransitionEnvelope("worker-9", ev).ID, "another writer emits the same ce-id")
	require.NotEqual(t, env.ID, TransitionEventID("payments", 8).String())
	h := env.Header()
	require.Equal(t, []string{"payments.7"}, h[HeaderMsgID])
	got, err := ParseEnvelope(h)
	require.NoError(t, err)
	require.Equal(t, env, got)
}

func TestArchivedEnvelope(t *testing.T) {
	t.Parallel()
	ev := ArchivedEvent{Service: "payments--eu2", Generation: 7, At: testTime}
	env := NewArchivedEnvelope("worker-2", ev)
	require.Equal(t, TypeBreakerArchived, env.Type)
	require.Equal(t, "payments--eu2.7.archived", env.MsgID)
	require.Equal(t, ArchivedEventID("payments--eu2", 7).String(), env.ID)
	require.Equal(t, env.ID, NewArchivedEnvelope("worker-9", ev).ID, "another writer emits the same ce-id")
	require.NotEqual(t, env.ID, TransitionEventID("payments--eu2", 7).String(), "not the transition's id")
	got, err := ParseEnvelope(env.Header())
	require.NoError(t, err)
	require.Equal(t, env, got)
}

func TestParseEnvelopeLenient(t *testing.T) {
	t.Parallel()
	h := nats.Header{
		"Ce-Type":      {"baldur.dlq.v1"},
		"CE-ID":        {"0B9D5F7E-3C1A-4E2B-9F60-7A8B1C2D3E4F"},
		"Content-Type": {"application/json; charset=utf-8"},
		"ce-time":      {"2026-03-14T16:09:26+01:00"},
		"Nats-Msg-Id":  {"0B9D5F7E-3C1A-4E2B-9F60-7A8B1C2D3E4F"},
	}
	got, err := ParseEnvelope(h)
	require.NoError(t, err)
	require.Equal(t, testID.String(), got.ID, "ce-id is returned lowercase")
	require.True(t, got.Time.Equal(testTime.Truncate(time.Second)))
	require.Empty(t, got.MsgID)
}

func TestParseEnvelopeRefuses(t *testing.T) {
	t.Parallel()
	good := func() nats.Header { return NewEnvelope(TypeOutcome, testID, "node-1", testTime).Header() }
	tests := []struct {
		name    string
		edit    func(h nats.Header)
		wantErr error
		wantMsg string
	}{
		{"no headers", func(h nats.Header) { clear(h) }, ErrMissingHeader, "ce-type is required"},
		{"no ce-type", func(h nats.Header) { delete(h, HeaderType) }, ErrMissingHeader, "ce-type is required"},
		{"empty ce-type", func(h nats.Header) { h.Set(HeaderType, "") }, ErrMissingHeader, "ce-type is required"},
		{"unknown ce-type", func(h nats.Header) { h.Set(HeaderType, "baldur.outcome.v2") }, ErrUnknownType, `"baldur.outcome.v2"`},
		{"no ce-id", func(h nats.Header) { delete(h, HeaderID) }, ErrMissingHeader, "ce-id is required"},
		{"ce-id not a UUID", func(h nats.Header) { h.Set(HeaderID, "order-123") }, ErrInvalidHeader, "is not a UUID"},
		{"ce-id braces", func(h nats.Header) { h.Set(HeaderID, "{"+testID.String()+"}") }, ErrInvalidHeader, "36-character"},
		{"ce-id 36 chars not hex", func(h nats.Header) { h.Set(HeaderID, "zb9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f") }, ErrInvalidHeader, "is not a UUID"},
		{"ce-id nil UUID", func(h nats.Header) { h.Set(HeaderID, uuid.Nil.String()) }, ErrInvalidHeader, "nil UUID"},
		{"ce-id twice", func(h nats.Header) { h.Add(HeaderID, testID.String()) }, ErrInvalidHeader, "ce-id is given 2 times"},
		{"ce-type two spellings", func(h nats.Header) {
			delete(h, HeaderType)
			h.Set("Ce-Type", "baldur.outcome.v1")
			h.Set("CE-TYPE", "baldur.outcome.v1")
		}, ErrInvalidHeader, "different spellings"},
		{"specversion 0.3", func(h nats.Header) { h.Set(HeaderSpecVersion, "0.3") }, ErrInvalidHeader, `ce-specversion is "0.3"`},
		{"specversion empty", func(h nats.Header) { h.Set(HeaderSpecVersion, "") }, ErrInvalidHeader, "ce-specversion"},
		{"bad ce-time", func(h nats.Header) { h.Set(HeaderTime, "yesterday") }, ErrInvalidHeader, `ce-time "yesterday" is not an RFC 3339 time`},
		{"ce-time without zone", func(h nats.Header) { h.Set(HeaderTime, "2026-03-14T15:09:26") }, ErrInvalidHeader, "RFC 3339"},
		{"content-type xml", func(h nats.Header) { h.Set(HeaderContentType, "application/xml") }, ErrInvalidHeader, `content-type is "application/xml"`},
		{"content-type latin1", func(h nats.Header) { h.Set(HeaderContentType, "application/json; charset=latin1") }, ErrInvalidHeader, "content-type"},
		{"msg id differs", func(h nats.Header) { h.Set(HeaderMsgID, "other") }, ErrInvalidHeader, `Nats-Msg-Id "other" differs from ce-id`},
		{"source too long", func(h nats.Header) { h.Set(HeaderSource, string(make([]byte, 257))) }, ErrInvalidHeader, "ce-source is 257 bytes long"},
		{"source control char", func(h nats.Header) { h.Set(HeaderSource, "node\x00") }, ErrInvalidHeader, "ce-source has the character '\\x00' (U+0000) at position 4"},
		{"source invalid UTF-8", func(h nats.Header) { h.Set(HeaderSource, "n\xc3") }, ErrInvalidHeader, "invalid UTF-8 byte 0xc3 at position 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := good()
			tt.edit(h)
			_, err := ParseEnvelope(h)
			require.ErrorIs(t, err, tt.wantErr)
			require.ErrorContains(t, err, tt.wantMsg)
		})
	}
}

func TestParseEnvelopeNilHeader(t *testing.T) {
	t.Parallel()
	_, err := ParseEnvelope(nil)
	require.ErrorIs(t, err, ErrMissingHeader)
}
