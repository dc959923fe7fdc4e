package events

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// decodeOutcomeGeneral is DecodeOutcome's general path, without the fast one.
func decodeOutcomeGeneral(body []byte) (OutcomeReport, error) {
	var r OutcomeReport
	err := unmarshalStrict(body, &r, outcomeFields, func(_ int, name string, val []byte) error {
		if name == "failure_types" {
			return scanMapKeys(val, payloadOutcome, name, nil)
		}
		return nil
	})
	if len(r.FailureTypes) == 0 {
		r.FailureTypes = nil
	}
	return r, err
}

func TestDecodeOutcomeFastPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		fast bool
	}{
		{`{"successes":1,"failures":0,"slow_calls":0,"trailing_failures":0}`, true},
		{` { "failures" : 3 ,"trailing_failures":3 } `, true},
		{`{}`, true},
		{`{"successes":-0}`, true},
		{`{"successes":999999999999999999}`, true},
		{`{"successes":1000000000000000000}`, false}, // 19 digits: the general path decides
		{`{"successes":01}`, false},
		{`{"successes":1.0}`, false},
		{`{"successes":1e3}`, false},
		{`{"successes":"1"}`, false},
		{`{"successes":1,"successes":2}`, false},
		{`{"Successes":1}`, false},
		{`{"succ\u0065sses":1}`, false},
		{`{"successes":1,"failure_types":{"A":1}}`, false},
		{`{"successes":1}x`, false},
		{`{"successes":1,}`, false},
		{`{"successes":1`, false},
		{`[1]`, false},
		{``, false},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			t.Parallel()
			got, ok := decodeOutcomeFast([]byte(tt.body))
			require.Equal(t, tt.fast, ok)
			if ok {
				want, err := decodeOutcomeGeneral([]byte(tt.body))
				require.NoError(t, err)
				require.Equal(t, want, got)
			}
		})
	}
}

// FuzzDecodeOutcomeFastPath checks that whatever the fast path accepts, the
// general path accepts with the same report.
func FuzzDecodeOutcomeFastPath(f *testing.F) {
	for _, s := range []string{
		`{"successes":1,"failures":0,"slow_calls":0,"trailing_failures":0}`,
		`{"failures":2,"trailing_failures":2}`, ` { "slow_calls" : 1 , "successes":-12 } `,
		`{"successes":1e3}`, `{"successes":1,"failure_types":{"A":1}}`, `{"successes":00}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := decodeOutcomeFast(body)
		if !ok {
			return
		}
		want, err := decodeOutcomeGeneral(body)
		require.NoError(t, err, "fast path accepted %q", body)
		require.Equal(t, want, got)
	})
}

func BenchmarkDecodeOutcome(b *testing.B) {
	body := []byte(`{"successes":1,"failures":0,"slow_calls":0,"trailing_failures":0}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeOutcome(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("general", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeOutcomeGeneral(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
