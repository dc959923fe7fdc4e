package events

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// fuzzDecoder checks a decoder on arbitrary input: it never panics, every
// refusal wraps a sentinel error, and anything accepted re-encodes to JSON
// that decodes again to the same value (and the same encoding). Raw JSON
// fields (a dead letter's request) are HTML-escaped by encoding/json, so for
// them the value is a fixpoint only from the first re-encoding on: exact is
// false.
func fuzzDecoder[T any](t *testing.T, decode func([]byte) (T, error), body []byte, exact bool) {
	got, err := decode(body)
	if err != nil {
		require.NotEqual(t, "internal", ErrorCode(err), "refusal wraps no sentinel: %v", err)
		var zero T
		require.Equal(t, zero, got)
		return
	}
	enc, err := json.Marshal(got)
	require.NoError(t, err)
	again, err := decode(enc)
	require.NoError(t, err, "re-encoded value refused: %s", enc)
	enc2, err := json.Marshal(again)
	require.NoError(t, err)
	require.Equal(t, string(enc), string(enc2))
	if exact {
		require.Equal(t, got, again)
		return
	}
	third, err := decode(enc2)
	require.NoError(t, err)
	require.Equal(t, again, third)
}

func addSeeds(f *testing.F, seeds ...string) {
	for _, s := range syntaxRefusals {
		f.Add([]byte(s.body))
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
}

func FuzzDecodeOutcome(f *testing.F) {
	addSeeds(f,
		`{"successes":120,"failures":3,"slow_calls":1,"trailing_failures":2,"failure_types":{"TIMEOUT":2,"HTTP_503":1}}`,
		`{"failures":1,"trailing_failures":1}`,
		`{"successes":1,"Successes":2}`,
		`{"successes":1e3}`,
		`{"failures":2,"trailing_failures":2,"failure_types":{"A":1,"\u0041":1}}`,
		`{"successes":1,"failure_types":{"a\u00e9":1}}`,
		`{"successes":-1}`, `{"successes":1000000001}`, ` { "successes" : 1 } `)
	f.Fuzz(func(t *testing.T, body []byte) { fuzzDecoder(t, DecodeOutcome, body, true) })
}

func FuzzDecodeControl(f *testing.F) {
	addSeeds(f,
		`{"action":"open","actor":"a","reason":"r","ttl":"90m","override_kill_switch":true}`,
		`{"action":"close","actor":"a","reason":"r","trigger_replay":true}`,
		`{"action":"override","actor":"a","reason":"r","override":{"failure_threshold":10,"failure_rate_threshold":80,"recovery_timeout":"3m"}}`,
		`{"action":"half_open","trigger":"recovery_timeout"}`,
		`{"action":"open","actor":"a","reason":"r","ttl":null}`,
		`{"action":"open","actor":"a","reason":"r","ttl":90}`,
		`{"action":"override","actor":"a","reason":"r","override":{"recovery_timeout":null,"minimum_calls":3}}`,
		`{"action":"override","actor":"a","reason":"r","override":{"failure_rate_threshold":1e-300}}`)
	f.Fuzz(func(t *testing.T, body []byte) { fuzzDecoder(t, DecodeControl, body, true) })
}

func FuzzDecodeGovernance(f *testing.F) {
	addSeeds(f,
		`{"action":"set_emergency_level","level":2,"actor":"a","reason":"r"}`,
		`{"action":"kill_switch_on","actor":"a","reason":"r"}`,
		`{"action":"kill_switch_off","actor":"a","reason":"r","level":null}`,
		`{"action":"set_emergency_level","level":4,"actor":"a","reason":"r"}`)
	f.Fuzz(func(t *testing.T, body []byte) { fuzzDecoder(t, DecodeGovernance, body, true) })
}

func FuzzDecodeDeadLetter(f *testing.F) {
	addSeeds(f, goodDeadLetter,
		`{"domain":"custom","failure_type":"X","operation":"op"}`,
		`{"domain":"custom","failure_type":"X","operation":"op","request":"<b>&amp;</b>","metadata":{"a":"\u2028"}}`,
		`{"domain":"custom","failure_type":"X","operation":"op","request":null,"metadata":null,"max_retries":0}`,
		`{"domain":"custom","failure_type":"X","operation":"op","metadata":[]}`)
	f.Fuzz(func(t *testing.T, body []byte) { fuzzDecoder(t, DecodeDeadLetter, body, false) })
}

func FuzzDecodeReplayReply(f *testing.F) {
	addSeeds(f, `{"ok":true}`, `{"ok":false,"error":"x","retryable":true}`, `{"ok":null}`, `{"error":"x"}`)
	f.Fuzz(func(t *testing.T, body []byte) { fuzzDecoder(t, DecodeReplayReply, body, true) })
}

func FuzzDecodePermitRequest(f *testing.F) {
	addSeeds(f, `{"node":"pod-1"}`, `{"node":""}`, `{"node":"\u0000"}`, `{"Node":"x"}`)
	f.Fuzz(func(t *testing.T, body []byte) { fuzzDecoder(t, DecodePermitRequest, body, true) })
}

func FuzzParseEnvelope(f *testing.F) {
	f.Add("baldur.outcome.v1", testID.String(), "node-1", "2026-03-14T15:09:26Z", "1.0", "application/json", testID.String())
	f.Add("baldur.breaker.transition.v1", testID.String(), "", "", "", "", "payments.7")
	f.Add("baldur.dlq.v1", "0B9D5F7E-3C1A-4E2B-9F60-7A8B1C2D3E4F", "n", "2026-03-14T16:09:26.5+01:00", "1.0", "application/json;charset=UTF-8", "")
	f.Add("x", "y", "\x00", "now", "0.3", "text/plain", "z")
	f.Fuzz(func(t *testing.T, typ, id, source, ts, spec, ct, msgID string) {
		h := nats.Header{}
		for k, v := range map[string]string{HeaderType: typ, HeaderID: id, HeaderSource: source,
			HeaderTime: ts, HeaderSpecVersion: spec, HeaderContentType: ct, HeaderMsgID: msgID} {
			if v != "" {
				h.Set(k, v)
			}
		}
		env, err := ParseEnvelope(h)
		if err != nil {
			require.NotEqual(t, "internal", ErrorCode(err), "%v", err)
			return
		}
		again, err := ParseEnvelope(env.Header())
		require.NoError(t, err)
		require.Equal(t, env.Type, again.Type)
		require.Equal(t, env.ID, again.ID)
		require.Equal(t, env.Source, again.Source)
		require.Equal(t, env.MsgID, again.MsgID)
		require.True(t, env.Time.Equal(again.Time))
	})
}

func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{"baldur.outcome.payments", "baldur.governance", "baldur.api.dlq.stats",
		"baldur.event.breaker.p.opened", "baldur.event.replay.p.batch_completed", "baldur.event.governance.kill_switch",
		"baldur.event.rejected.dlq", "baldur.outcome.a.b", "baldur.event.breaker..opened", "baldur.", "", "baldur.outcome.é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		s, err := ParseSubject(subject)
		if err != nil {
			require.True(t, errors.Is(err, ErrInvalidSubject), "%v", err)
			return
		}
		require.Equal(t, subject, s.String(), "a parsed subject rebuilds to itself")
		if s.Service != "" {
			require.NoError(t, ValidateServiceName(s.Service))
		}
	})
}

func FuzzDecode(f *testing.F) {
	h := NewEnvelope(TypeOutcome, testID, "node-1", testTime).Header()
	f.Add("baldur.outcome.payments", "baldur.outcome.v1", []byte(`{"successes":1}`))
	f.Add("baldur.dlq.payments", "baldur.dlq.v1", []byte(goodDeadLetter))
	f.Add("baldur.event.rejected.dlq", "baldur.rejected.v1", []byte(`{"kind":"dlq","reason":"r","at":"2026-01-01T00:00:00Z"}`))
	f.Add("baldur.replay.payments", "baldur.replay.v1", []byte(`{}`))
	f.Fuzz(func(t *testing.T, subject, typ string, body []byte) {
		hh := nats.Header{}
		for k, v := range h {
			hh[k] = v
		}
		hh.Set(HeaderType, typ)
		_, err := Decode(subject, hh, body)
		if err != nil {
			require.NotEqual(t, "internal", ErrorCode(err), "%v", err)
			r := NewRejected(subject, hh, len(body), err, testTime)
			require.NoError(t, r.Validate())
			_, err := json.Marshal(r)
			require.NoError(t, err)
		}
	})
}
