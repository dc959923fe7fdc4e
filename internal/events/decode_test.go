package events

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

// refusal is one body a decoder must refuse: the sentinel it wraps, the field
// it names (FieldError.Field, "" when not a field error) and a fragment of the
// message.
type refusal struct {
	name    string
	body    string
	wantErr error
	field   string
	wantMsg string
}

func runRefusals[T any](t *testing.T, decode func([]byte) (T, error), tests []refusal) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := decode([]byte(tt.body))
			require.ErrorIs(t, err, tt.wantErr)
			require.ErrorContains(t, err, tt.wantMsg)
			var fe *FieldError
			if tt.field != "" {
				require.True(t, errors.As(err, &fe), "want a *FieldError, got %T: %v", err, err)
				require.Equal(t, tt.field, fe.Field)
			}
			var zero T
			require.Equal(t, zero, got, "a refused body decodes to the zero value")
		})
	}
}

// syntaxRefusals apply to every decoder.
var syntaxRefusals = []refusal{
	{"empty body", ``, ErrBadJSON, "", "unexpected end of JSON input"},
	{"not JSON", `successes=1`, ErrBadJSON, "", "invalid character"},
	{"truncated", `{"a":`, ErrBadJSON, "", "unexpected end"},
	{"null", `null`, ErrBadJSON, "", "must be a JSON object, got null"},
	{"array", `[1,2]`, ErrBadJSON, "", "must be a JSON object, got an array"},
	{"string", `"x"`, ErrBadJSON, "", "got a string"},
	{"number", `1`, ErrBadJSON, "", "got a number"},
	{"trailing data", `{} {}`, ErrBadJSON, "", "after top-level value"},
	{"trailing garbage", `{}x`, ErrBadJSON, "", "after top-level value"},
	{"unknown field", `{"zzz":1}`, ErrUnknownField, "zzz", "is not part of the contract"},
}

func TestDecodeOutcome(t *testing.T) {
	t.Parallel()
	got, err := DecodeOutcome([]byte(` {"successes": 120, "failures": 3, "slow_calls": 1, "trailing_failures": 2,
	 "failure_types": {"TIMEOUT": 2, "HTTP_503": 1}} `))
	require.NoError(t, err)
	require.Equal(t, OutcomeReport{Successes: 120, Failures: 3, SlowCalls: 1, TrailingFailures: 2,
		FailureTypes: map[string]int64{"TIMEOUT": 2, "HTTP_503": 1}}, got)

	got, err = DecodeOutcome([]byte(`{"failures":1,"trailing_failures":1,"failure_types":{}}`))
	require.NoError(t, err)
	require.Nil(t, got.FailureTypes, "an empty failure_types decodes to nil")

	r := got.Report("node-1", 42, testTime)
	require.Equal(t, domain.Report{Node: "node-1", Seq: 42, At: testTime, Failures: 1, TrailingFailures: 1}, r)
}

func TestDecodeOutcomeRefuses(t *testing.T) {
	t.Parallel()
	manyTypes := `{"failures":40,"trailing_failures":40,"failure_types":{`
	for i := range 33 {
		if i > 0 {
			manyTypes += ","
		}
		manyTypes += `"T` + strings.Repeat("x", i) + `":1`
	}
	manyTypes += `}}`
	runRefusals(t, DecodeOutcome, append(slicesClone(syntaxRefusals),
		refusal{"too large", `{"successes":1,"failure_types":{"` + strings.Repeat("x", MaxOutcomeBody) + `":1}}`, ErrTooLarge, "", "at most 8192"},
		refusal{"wrong case", `{"Successes":1}`, ErrUnknownField, "Successes", "names are case-sensitive"},
		refusal{"duplicate", `{"successes":1,"successes":2}`, ErrDuplicateField, "successes", "more than once"},
		refusal{"duplicate failure type", `{"failures":2,"trailing_failures":2,"failure_types":{"A":1,"A":1}}`, ErrDuplicateField, "failure_types.A", "more than once"},
		refusal{"duplicate failure type escaped", `{"failures":2,"trailing_failures":2,"failure_types":{"A":1,"\u0041":1}}`, ErrDuplicateField, "failure_types.A", "more than once"},
		refusal{"string count", `{"successes":"1"}`, ErrInvalidValue, "successes", "must be a JSON integer"},
		refusal{"fractional count", `{"successes":1.5}`, ErrInvalidValue, "successes", "got number 1.5"},
		refusal{"overflowing count", `{"successes":99999999999999999999}`, ErrInvalidValue, "successes", "integer"},
		refusal{"negative successes", `{"successes":-1,"failures":1,"trailing_failures":1}`, ErrInvalidValue, "successes", "is -1; counts must not be negative"},
		refusal{"negative failures", `{"successes":1,"failures":-1}`, ErrInvalidValue, "failures", "must not be negative"},
		refusal{"negative slow", `{"successes":1,"slow_calls":-1}`, ErrInvalidValue, "slow_calls", "must not be negative"},
		refusal{"negative trailing", `{"successes":1,"failures":1,"trailing_failures":-1}`, ErrInvalidValue, "trailing_failures", "must not be negative"},
		refusal{"absurd successes", `{"successes":1000000001}`, ErrInvalidValue, "successes", "at most 1000000000 per report"},
		refusal{"absurd failures", `{"failures":5000000000,"trailing_failures":5000000000}`, ErrInvalidValue, "failures", "at most 1000000000"},
		refusal{"no calls", `{}`, ErrInvalidValue, "successes", "a report covers at least one call"},
		refusal{"zeros", `{"successes":0,"failures":0}`, ErrInvalidValue, "successes", "at least one call"},
		refusal{"trailing > failures", `{"successes":5,"failures":3,"trailing_failures":5}`, ErrInvalidValue, "trailing_failures", "is 5, more than failures (3)"},
		refusal{"trailing != failures without success", `{"failures":3,"trailing_failures":2}`, ErrInvalidValue, "trailing_failures", "must equal failures (3) when successes is 0"},
		refusal{"slow > calls", `{"successes":1,"failures":1,"trailing_failures":1,"slow_calls":3}`, ErrInvalidValue, "slow_calls", "is 3, more than successes + failures (2)"},
		refusal{"too many failure types", manyTypes, ErrTooLarge, "failure_types", "has 33 keys, at most 32"},
		refusal{"empty failure type", `{"failures":1,"trailing_failures":1,"failure_types":{"":1}}`, ErrInvalidValue, "failure_types", "empty name"},
		refusal{"bad failure type char", `{"failures":1,"trailing_failures":1,"failure_types":{"a b":1}}`, ErrInvalidValue, "failure_types", "the character ' ' at position 1"},
		refusal{"failure type leading dot", `{"failures":1,"trailing_failures":1,"failure_types":{".x":1}}`, ErrInvalidValue, "failure_types", "at position 0"},
		refusal{"long failure type", `{"failures":1,"trailing_failures":1,"failure_types":{"` + strings.Repeat("a", 65) + `":1}}`, ErrInvalidValue, "failure_types", "65 bytes long"},
		refusal{"zero failure type count", `{"failures":1,"trailing_failures":1,"failure_types":{"A":0}}`, ErrInvalidValue, "failure_types.A", "is 0; want 1.."},
		refusal{"negative failure type count", `{"failures":1,"trailing_failures":1,"failure_types":{"A":-2}}`, ErrInvalidValue, "failure_types.A", "is -2"},
		refusal{"failure types exceed failures", `{"failures":1,"trailing_failures":1,"failure_types":{"A":1,"B":1}}`, ErrInvalidValue, "failure_types", "add up to 2, more than failures (1)"},
		refusal{"failure types not an object", `{"failures":1,"trailing_failures":1,"failure_types":[1]}`, ErrInvalidValue, "failure_types", "must be a JSON object"},
	))
}

func slicesClone(r []refusal) []refusal { return append([]refusal(nil), r...) }

func TestDecodeControl(t *testing.T) {
	t.Parallel()
	got, err := DecodeControl([]byte(`{"action": "override", "actor": "oncall-sre", "reason": "vendor maintenance", "ttl": "90m",
	 "override_kill_switch": true,
	 "override": {"failure_threshold": 10, "failure_rate_threshold": 80, "recovery_timeout": "3m"}}`))
	require.NoError(t, err)
	ten, eighty, three := 10, 80.0, domain.Duration(3*60e9)
	want := BreakerCommand{Action: domain.ActionOverride, Actor: "oncall-sre", Reason: "vendor maintenance",
		TTL: domain.Duration(90 * 60e9), OverrideKillSwitch: true,
		Override: &domain.ThresholdOverride{FailureThreshold: &ten, FailureRateThreshold: &eighty, RecoveryTimeout: &three}}
	require.Equal(t, want, got)
	cmd := got.Command(testID.String())
	require.Equal(t, testID.String(), cmd.ID)
	require.Equal(t, got, CommandFromDomain(cmd))
	require.NoError(t, ValidateCommand(cmd))

	for _, body := range []string{
		`{"action":"half_open","trigger":"recovery_timeout"}`,
		`{"action":"half_open","trigger":"stuck_half_open"}`,
		`{"action":"half_open"}`,
		`{"action":"close","actor":"a","reason":"r","trigger_replay":true,"ttl":"1s"}`,
		`{"action":"open","actor":"a","reason":"r","ttl":"168h","trigger":"manual"}`,
		`{"action":"half_open","trigger":"manual_expired"}`,
		`{"action":"half_open","trigger":"override_expired"}`,
		`{"action":"clear_override","actor":"a","reason":"r","trigger":"manual"}`,
		`{"action":"disable","actor":"a","reason":"r","override":null,"trigger":null}`,
		`{"action":"metrics_only","actor":"a","reason":"r"}`,
		`{"action":"archive","actor":"wd-1","reason":"cell eu2 no longer owns payments","trigger":"cell_unmapped"}`,
		`{"action":"archive","actor":"wd-1","reason":"no activity for 168h","trigger":"idle","ttl":"168h"}`,
	} {
		_, err := DecodeControl([]byte(body))
		require.NoError(t, err, body)
	}
}

func TestDecodeControlRefuses(t *testing.T) {
	t.Parallel()
	const ar = `"actor":"a","reason":"r"`
	runRefusals(t, DecodeControl, append(slicesClone(syntaxRefusals),
		refusal{"too large", `{"action":"open",` + ar + `,"x":"` + strings.Repeat("x", MaxCommandBody) + `"}`, ErrTooLarge, "", "at most 16384"},
		refusal{"id is not a body field", `{"action":"open",` + ar + `,"id":"x"}`, ErrUnknownField, "id", "not part of the contract"},
		refusal{"missing action", `{` + ar + `}`, ErrMissingField, "action", "is required"},
		refusal{"unknown action", `{"action":"explode",` + ar + `}`, ErrInvalidValue, "action", `is "explode"; want one of open|close`},
		refusal{"action wrong case", `{"action":"OPEN",` + ar + `}`, ErrInvalidValue, "action", `"OPEN"`},
		refusal{"action number", `{"action":1}`, ErrInvalidValue, "action", "must be a JSON string"},
		refusal{"manual without actor", `{"action":"open","reason":"r"}`, ErrMissingField, "actor", "is required"},
		refusal{"manual with blank actor", `{"action":"open","actor":"  ","reason":"r"}`, ErrMissingField, "actor", "is required"},
		refusal{"manual without reason", `{"action":"close","actor":"a"}`, ErrMissingField, "reason", "is required"},
		refusal{"override without reason", `{"action":"clear_override","actor":"a"}`, ErrMissingField, "reason", "is required"},
		refusal{"actor too long", `{"action":"open","actor":"` + strings.Repeat("a", 129) + `","reason":"r"}`, ErrTooLarge, "actor", "129 bytes long, at most 128"},
		refusal{"reason too long", `{"action":"open","actor":"a","reason":"` + strings.Repeat("r", 1025) + `"}`, ErrTooLarge, "reason", "at most 1024"},
		refusal{"reason with newline", `{"action":"open","actor":"a","reason":"a\nb"}`, ErrInvalidValue, "reason", "control character '\\n' at position 1"},
		refusal{"ttl number", `{"action":"open",` + ar + `,"ttl":90}`, ErrInvalidValue, "ttl", "duration must be a string"},
		refusal{"ttl garbage", `{"action":"open",` + ar + `,"ttl":"soon"}`, ErrInvalidValue, "ttl", `invalid duration "soon"`},
		refusal{"ttl negative", `{"action":"open",` + ar + `,"ttl":"-5m"}`, ErrInvalidValue, "ttl", "must not be negative"},
		refusal{"ttl null", `{"action":"open",` + ar + `,"ttl":null}`, ErrInvalidValue, "ttl", "is null; omit it"},
		refusal{"ttl empty", `{"action":"open",` + ar + `,"ttl":""}`, ErrInvalidValue, "ttl", `invalid duration ""`},
		refusal{"ttl zero", `{"action":"open",` + ar + `,"ttl":"0s"}`, ErrInvalidValue, "ttl", "is 0; omit it"},
		refusal{"ttl too short", `{"action":"open",` + ar + `,"ttl":"500ms"}`, ErrInvalidValue, "ttl", "is 500ms; want 1s..168h0m0s"},
		refusal{"ttl too long", `{"action":"close",` + ar + `,"ttl":"169h"}`, ErrInvalidValue, "ttl", "want 1s..168h0m0s"},
		refusal{"ttl on auto", `{"action":"auto",` + ar + `,"ttl":"1h"}`, ErrInvalidValue, "ttl", `for action "auto"`},
		refusal{"ttl on half_open", `{"action":"half_open","ttl":"1h"}`, ErrInvalidValue, "ttl", `for action "half_open"`},
		refusal{"trigger_replay on open", `{"action":"open",` + ar + `,"trigger_replay":true}`, ErrInvalidValue, "trigger_replay", "only close replays"},
		refusal{"trigger_replay string", `{"action":"close",` + ar + `,"trigger_replay":"yes"}`, ErrInvalidValue, "trigger_replay", "must be a JSON boolean"},
		refusal{"override_kill_switch on half_open", `{"action":"half_open","override_kill_switch":true}`, ErrInvalidValue, "override_kill_switch", "not a manual action"},
		refusal{"override missing", `{"action":"override",` + ar + `}`, ErrMissingField, "override", `required for action "override"`},
		refusal{"override empty", `{"action":"override",` + ar + `,"override":{}}`, ErrMissingField, "override", "sets no field"},
		refusal{"override on open", `{"action":"open",` + ar + `,"override":{"failure_threshold":3}}`, ErrInvalidValue, "override", "only the override action"},
		refusal{"override unknown field", `{"action":"override",` + ar + `,"override":{"failure_treshold":3}}`, ErrUnknownField, "override.failure_treshold", "not part of the contract"},
		refusal{"override duplicate field", `{"action":"override",` + ar + `,"override":{"failure_threshold":3,"failure_threshold":4}}`, ErrDuplicateField, "override.failure_threshold", "more than once"},
		refusal{"override not an object", `{"action":"override",` + ar + `,"override":[1]}`, ErrBadJSON, "", "override must be a JSON object"},
		refusal{"override threshold zero", `{"action":"override",` + ar + `,"override":{"failure_threshold":0}}`, ErrInvalidValue, "override.failure_threshold", "is 0; want 1..1000000"},
		refusal{"override threshold huge", `{"action":"override",` + ar + `,"override":{"failure_threshold":1000001}}`, ErrInvalidValue, "override.failure_threshold", "want 1..1000000"},
		refusal{"override threshold string", `{"action":"override",` + ar + `,"override":{"failure_threshold":"3"}}`, ErrInvalidValue, "override.failure_threshold", "must be a JSON integer"},
		refusal{"override minimum calls", `{"action":"override",` + ar + `,"override":{"minimum_calls":-1}}`, ErrInvalidValue, "override.minimum_calls", "is -1"},
		refusal{"override rate zero", `{"action":"override",` + ar + `,"override":{"failure_rate_threshold":0}}`, ErrInvalidValue, "override.failure_rate_threshold", "(0, 100]"},
		refusal{"override rate over 100", `{"action":"override",` + ar + `,"override":{"failure_rate_threshold":100.5}}`, ErrInvalidValue, "override.failure_rate_threshold", "is 100.5"},
		refusal{"override slow rate", `{"action":"override",` + ar + `,"override":{"slow_call_rate_threshold":-1}}`, ErrInvalidValue, "override.slow_call_rate_threshold", "(0, 100]"},
		refusal{"override recovery short", `{"action":"override",` + ar + `,"override":{"recovery_timeout":"10ms"}}`, ErrInvalidValue, "override.recovery_timeout", "is 10ms; want 1s..24h0m0s"},
		refusal{"override recovery long", `{"action":"override",` + ar + `,"override":{"recovery_timeout":"25h"}}`, ErrInvalidValue, "override.recovery_timeout", "want 1s..24h0m0s"},
		refusal{"override recovery number", `{"action":"override",` + ar + `,"override":{"recovery_timeout":60}}`, ErrInvalidValue, "override.recovery_timeout", "duration must be a string"},
		refusal{"unknown trigger", `{"action":"half_open","trigger":"boom"}`, ErrInvalidValue, "trigger", `is "boom"; action "half_open" takes recovery_timeout|stuck_half_open|manual_expired|override_expired`},
		refusal{"manual trigger on half_open", `{"action":"half_open","trigger":"manual"}`, ErrInvalidValue, "trigger", `is "manual"`},
		refusal{"fold-only trigger", `{"action":"open",` + ar + `,"trigger":"half_open_failure"}`, ErrInvalidValue, "trigger", `action "open" takes manual`},
		refusal{"recovery trigger on close", `{"action":"close",` + ar + `,"trigger":"recovery_timeout"}`, ErrInvalidValue, "trigger", `"recovery_timeout"`},
		refusal{"expiry trigger on clear_override", `{"action":"clear_override",` + ar + `,"trigger":"override_expired"}`, ErrInvalidValue, "trigger", `action "clear_override" takes manual or none`},
		refusal{"archive without trigger", `{"action":"archive",` + ar + `}`, ErrMissingField, "trigger", `required for action "archive" (cell_unmapped or idle)`},
		refusal{"archive with manual trigger", `{"action":"archive",` + ar + `,"trigger":"manual"}`, ErrInvalidValue, "trigger", `action "archive" takes cell_unmapped|idle`},
		refusal{"archive with expiry trigger", `{"action":"archive",` + ar + `,"trigger":"manual_expired"}`, ErrInvalidValue, "trigger", `is "manual_expired"`},
		refusal{"archive without actor", `{"action":"archive","reason":"r","trigger":"cell_unmapped"}`, ErrMissingField, "actor", "is required"},
		refusal{"archive without reason", `{"action":"archive","actor":"a","trigger":"cell_unmapped"}`, ErrMissingField, "reason", "is required"},
		refusal{"archive with ttl", `{"action":"archive",` + ar + `,"trigger":"cell_unmapped","ttl":"1h"}`, ErrInvalidValue, "ttl", `for action "archive"`},
		refusal{"archive idle without ttl", `{"action":"archive",` + ar + `,"trigger":"idle"}`, ErrMissingField, "ttl", "idle period"},
		refusal{"archive idle below a minute", `{"action":"archive",` + ar + `,"trigger":"idle","ttl":"59s"}`, ErrInvalidValue, "ttl", "want an idle period of 1m0s..8784h0m0s"},
		refusal{"archive idle above a year", `{"action":"archive",` + ar + `,"trigger":"idle","ttl":"8785h"}`, ErrInvalidValue, "ttl", "is 8785h0m0s"},
		refusal{"archive with override_kill_switch", `{"action":"archive",` + ar + `,"trigger":"cell_unmapped","override_kill_switch":true}`, ErrInvalidValue, "override_kill_switch", "not a manual action"},
		refusal{"cell_unmapped on half_open", `{"action":"half_open","trigger":"cell_unmapped"}`, ErrInvalidValue, "trigger", `is "cell_unmapped"`},
		refusal{"cell_unmapped on open", `{"action":"open",` + ar + `,"trigger":"cell_unmapped"}`, ErrInvalidValue, "trigger", `action "open" takes manual`},
		refusal{"expiry trigger on auto", `{"action":"auto",` + ar + `,"trigger":"manual_expired"}`, ErrInvalidValue, "trigger", `action "auto" takes manual or none`},
	))
}

func TestDecodeGovernance(t *testing.T) {
	t.Parallel()
	got, err := DecodeGovernance([]byte(`{"action":"set_emergency_level","level":2,"actor":"sre","reason":"incident 42"}`))
	require.NoError(t, err)
	require.Equal(t, ActionSetEmergencyLevel, got.Action)
	require.Equal(t, domain.EmergencyLevel2, *got.Level)
	for _, body := range []string{
		`{"action":"set_emergency_level","level":0,"actor":"sre","reason":"over"}`,
		`{"action":"kill_switch_on","actor":"sre","reason":"r"}`,
		`{"action":"kill_switch_off","actor":"sre","reason":"r","level":null}`,
	} {
		_, err := DecodeGovernance([]byte(body))
		require.NoError(t, err, body)
	}
}

func TestDecodeGovernanceRefuses(t *testing.T) {
	t.Parallel()
	const ar = `"actor":"a","reason":"r"`
	runRefusals(t, DecodeGovernance, append(slicesClone(syntaxRefusals),
		refusal{"too large", `{"action":"kill_switch_on",` + ar + `,"x":"` + strings.Repeat("x", MaxGovernanceBody) + `"}`, ErrTooLarge, "", "at most 16384"},
		refusal{"missing action", `{` + ar + `}`, ErrMissingField, "action", "is required (one of kill_switch_on|kill_switch_off|set_emergency_level|set_slo_target)"},
		refusal{"unknown action", `{"action":"panic",` + ar + `}`, ErrInvalidValue, "action", `is "panic"`},
		refusal{"level missing", `{"action":"set_emergency_level",` + ar + `}`, ErrMissingField, "level", "required for set_emergency_level"},
		refusal{"level 4", `{"action":"set_emergency_level","level":4,` + ar + `}`, ErrInvalidValue, "level", "is 4; want 0..3"},
		refusal{"level -1", `{"action":"set_emergency_level","level":-1,` + ar + `}`, ErrInvalidValue, "level", "is -1; want 0..3"},
		refusal{"level name", `{"action":"set_emergency_level","level":"LEVEL_2",` + ar + `}`, ErrInvalidValue, "level", "must be a JSON integer"},
		refusal{"level on kill switch", `{"action":"kill_switch_on","level":1,` + ar + `}`, ErrInvalidValue, "level", `is given for action "kill_switch_on"`},
		refusal{"level 0 on kill switch off", `{"action":"kill_switch_off","level":0,` + ar + `}`, ErrInvalidValue, "level", "only set_emergency_level"},
		refusal{"no actor", `{"action":"kill_switch_on","reason":"r"}`, ErrMissingField, "actor", "is required"},
		refusal{"no reason", `{"action":"kill_switch_off","actor":"a"}`, ErrMissingField, "reason", "is required"},
		refusal{"duplicate action", `{"action":"kill_switch_on","action":"kill_switch_off",` + ar + `}`, ErrDuplicateField, "action", "more than once"},
		refusal{"slo target missing", `{"action":"set_slo_target",` + ar + `}`, ErrMissingField, "slo_target", "required for set_slo_target"},
		refusal{"slo target null", `{"action":"set_slo_target","slo_target":null,` + ar + `}`, ErrMissingField, "slo_target", "required for set_slo_target"},
		refusal{"slo target 1", `{"action":"set_slo_target","slo_target":1,` + ar + `}`, ErrInvalidValue, "slo_target", "is 1; want a fraction"},
		refusal{"slo target 99.9", `{"action":"set_slo_target","slo_target":99.9,` + ar + `}`, ErrInvalidValue, "slo_target", "is 99.9"},
		refusal{"slo target negative", `{"action":"set_slo_target","slo_target":-0.5,` + ar + `}`, ErrInvalidValue, "slo_target", "is -0.5"},
		refusal{"slo target string", `{"action":"set_slo_target","slo_target":"0.999",` + ar + `}`, ErrInvalidValue, "slo_target", ""},
		refusal{"slo window too short", `{"action":"set_slo_target","slo_target":0.99,"slo_window":"10m",` + ar + `}`, ErrInvalidValue, "slo_window", "is 10m0s; want 1h0m0s..2160h0m0s"},
		refusal{"slo window too long", `{"action":"set_slo_target","slo_target":0.99,"slo_window":"2161h",` + ar + `}`, ErrInvalidValue, "slo_window", "want 1h0m0s..2160h0m0s"},
		refusal{"slo window zero", `{"action":"set_slo_target","slo_target":0.99,"slo_window":"0s",` + ar + `}`, ErrInvalidValue, "slo_window", "is 0; omit it"},
		refusal{"slo window not a duration", `{"action":"set_slo_target","slo_target":0.99,"slo_window":"30 days",` + ar + `}`, ErrInvalidValue, "slo_window", "30 days"},
		refusal{"slo window null", `{"action":"set_slo_target","slo_target":0.99,"slo_window":null,` + ar + `}`, ErrInvalidValue, "slo_window", "is null"},
		refusal{"slo window with the gate off", `{"action":"set_slo_target","slo_target":0,"slo_window":"720h",` + ar + `}`, ErrInvalidValue, "slo_window", "slo_target 0"},
		refusal{"slo target on kill switch", `{"action":"kill_switch_on","slo_target":0.999,` + ar + `}`, ErrInvalidValue, "slo_target", "only set_slo_target"},
		refusal{"slo window on emergency level", `{"action":"set_emergency_level","level":1,"slo_window":"720h",` + ar + `}`, ErrInvalidValue, "slo_window", "only set_slo_target"},
		refusal{"level on slo target", `{"action":"set_slo_target","slo_target":0.999,"level":1,` + ar + `}`, ErrInvalidValue, "level", "only set_emergency_level"},
	))
}

func TestDecodeGovernanceSLOTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		target float64
		window time.Duration
	}{
		{"target and window", `{"action":"set_slo_target","slo_target":0.999,"slo_window":"720h","actor":"sre","reason":"q3 objective"}`, 0.999, 720 * time.Hour},
		{"default window", `{"action":"set_slo_target","slo_target":0.95,"actor":"sre","reason":"r"}`, 0.95, 0},
		{"gate off", `{"action":"set_slo_target","slo_target":0,"actor":"sre","reason":"r"}`, 0, 0},
		{"shortest window", `{"action":"set_slo_target","slo_target":0.5,"slo_window":"1h","actor":"sre","reason":"r"}`, 0.5, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeGovernance([]byte(tt.body))
			require.NoError(t, err)
			require.Equal(t, ActionSetSLOTarget, got.Action)
			require.NotNil(t, got.SLOTarget)
			require.Equal(t, tt.target, *got.SLOTarget)
			require.Equal(t, tt.window, got.SLOWindow.D())
			require.Nil(t, got.Level)
		})
	}
}

const goodDeadLetter = `{"domain": "external_service", "failure_type": "PG_TIMEOUT", "operation": "charge",
 "idempotency_key": "order-123-charge", "entity_type": "order", "entity_id": "123",
 "request": {"any": "json", "n": [1, 2]}, "error_code": "504", "error_message": "upstream timeout",
 "priority": "critical", "max_retries": 2, "metadata": {"region": "eu"}}`

func TestDecodeDeadLetter(t *testing.T) {
	t.Parallel()
	got, err := DecodeDeadLetter([]byte(goodDeadLetter))
	require.NoError(t, err)
	two := 2
	require.Equal(t, DeadLetter{Domain: domain.DomainExternalService, FailureType: "PG_TIMEOUT",
		Operation: "charge", IdempotencyKey: "order-123-charge", EntityType: "order", EntityID: "123",
		Request: json.RawMessage(`{"any":"json","n":[1,2]}`), ErrorCode: "504", ErrorMessage: "upstream timeout",
		Priority: domain.PriorityCritical, MaxRetries: &two, Metadata: json.RawMessage(`{"region":"eu"}`)}, got,
		"request and metadata are compacted")

	e := got.Entry(testID.String(), "payments", testTime)
	require.Equal(t, domain.DLQEntry{ID: testID.String(), Service: "payments", Domain: domain.DomainExternalService,
		FailureType: "PG_TIMEOUT", Operation: "charge", IdempotencyKey: "order-123-charge", EntityType: "order",
		EntityID: "123", Request: got.Request, ErrorCode: "504", ErrorMessage: "upstream timeout",
		Priority: domain.PriorityCritical, Metadata: got.Metadata, Status: domain.DLQPending, MaxRetries: 2,
		NextAttemptAt: testTime, LastError: "upstream timeout", CreatedAt: testTime, UpdatedAt: testTime,
		ExpiresAt: testTime.Add(domain.DefaultRetention)}, e)

	minimal, err := DecodeDeadLetter([]byte(`{"domain":"custom","failure_type":"X","operation":"op","request":null,"metadata":null}`))
	require.NoError(t, err)
	require.Nil(t, minimal.Request)
	require.Nil(t, minimal.Metadata)
	e = minimal.Entry(testID.String(), "svc", testTime)
	require.Equal(t, domain.PriorityNormal, e.Priority, "priority defaults to normal")
	require.Equal(t, domain.DefaultMaxRetries, e.MaxRetries, "max_retries defaults to the seed's 2")

	zero, err := DecodeDeadLetter([]byte(`{"domain":"custom","failure_type":"X","operation":"op","max_retries":0}`))
	require.NoError(t, err)
	require.Equal(t, 0, zero.Entry("id", "svc", testTime).MaxRetries, "max_retries 0 means no retry")

	big := `{"domain":"custom","failure_type":"X","operation":"op","request":"` + strings.Repeat("x", MaxRequestSize-2) + `"}`
	_, err = DecodeDeadLetter([]byte(big))
	require.NoError(t, err, "a request of exactly 256 KiB is accepted")

	multiline, err := DecodeDeadLetter([]byte(`{"domain":"custom","failure_type":"X","operation":"op","error_message":"line 1\n\tline 2"}`))
	require.NoError(t, err)
	require.Equal(t, "line 1\n\tline 2", multiline.ErrorMessage)
}

func TestDecodeDeadLetterRefuses(t *testing.T) {
	t.Parallel()
	base := `"domain":"custom","failure_type":"X","operation":"op"`
	runRefusals(t, DecodeDeadLetter, append(slicesClone(syntaxRefusals),
		refusal{"body too large", `{` + base + `,"request":"` + strings.Repeat("x", MaxDeadLetterBody) + `"}`, ErrTooLarge, "", "at most 327680"},
		refusal{"request too large", `{` + base + `,"request":"` + strings.Repeat("x", MaxRequestSize-1) + `"}`, ErrTooLarge, "request", "262145 bytes, at most 262144"},
		refusal{"missing domain", `{"failure_type":"X","operation":"op"}`, ErrMissingField, "domain", "is required"},
		refusal{"unknown domain", `{"domain":"payments","failure_type":"X","operation":"op"}`, ErrInvalidValue, "domain", `is "payments"; want one of external_service`},
		refusal{"missing failure type", `{"domain":"custom","operation":"op"}`, ErrMissingField, "failure_type", "is required"},
		refusal{"bad failure type", `{"domain":"custom","failure_type":"pg timeout","operation":"op"}`, ErrInvalidValue, "failure_type", "the character ' '"},
		refusal{"missing operation", `{"domain":"custom","failure_type":"X"}`, ErrMissingField, "operation", "is required"},
		refusal{"operation with CR", `{"domain":"custom","failure_type":"X","operation":"a\r\nb"}`, ErrInvalidValue, "operation", "control character"},
		refusal{"operation too long", `{"domain":"custom","failure_type":"X","operation":"` + strings.Repeat("o", 129) + `"}`, ErrTooLarge, "operation", "at most 128"},
		refusal{"idempotency key too long", `{` + base + `,"idempotency_key":"` + strings.Repeat("k", 257) + `"}`, ErrTooLarge, "idempotency_key", "at most 256"},
		refusal{"idempotency key newline", `{` + base + `,"idempotency_key":"a\nb"}`, ErrInvalidValue, "idempotency_key", "control character"},
		refusal{"entity type too long", `{` + base + `,"entity_type":"` + strings.Repeat("e", 129) + `"}`, ErrTooLarge, "entity_type", "at most 128"},
		refusal{"entity id too long", `{` + base + `,"entity_id":"` + strings.Repeat("e", 257) + `"}`, ErrTooLarge, "entity_id", "at most 256"},
		refusal{"error code too long", `{` + base + `,"error_code":"` + strings.Repeat("e", 65) + `"}`, ErrTooLarge, "error_code", "at most 64"},
		refusal{"error message too long", `{` + base + `,"error_message":"` + strings.Repeat("e", MaxErrorMessageLen+1) + `"}`, ErrTooLarge, "error_message", "at most 16384"},
		refusal{"error message NUL", `{` + base + `,"error_message":"a\u0000"}`, ErrInvalidValue, "error_message", "control character"},
		refusal{"unknown priority", `{` + base + `,"priority":"urgent"}`, ErrInvalidValue, "priority", `is "urgent"; want one of critical|normal|low`},
		refusal{"negative max retries", `{` + base + `,"max_retries":-1}`, ErrInvalidValue, "max_retries", "is -1; want 0..100"},
		refusal{"huge max retries", `{` + base + `,"max_retries":101}`, ErrInvalidValue, "max_retries", "is 101; want 0..100"},
		refusal{"request with NUL", `{` + base + `,"request":{"k":"a\u0000b"}}`, ErrInvalidValue, "request", "cannot be stored"},
		refusal{"request with lone surrogate", `{` + base + `,"request":"\ud800"}`, ErrInvalidValue, "request", "unpaired high surrogate"},
		refusal{"request not UTF-8", `{` + base + `,"request":"` + "\xff" + `"}`, ErrInvalidValue, "request", "invalid UTF-8"},
		refusal{"metadata with NUL", `{` + base + `,"metadata":{"\u0000":1}}`, ErrInvalidValue, "metadata", "cannot be stored"},
		refusal{"metadata with lone surrogate", `{` + base + `,"metadata":{"k":"\udc00"}}`, ErrInvalidValue, "metadata", "unpaired low surrogate"},
		refusal{"metadata array", `{` + base + `,"metadata":[1]}`, ErrInvalidValue, "metadata", "must be a JSON object, got an array"},
		refusal{"metadata string", `{` + base + `,"metadata":"x"}`, ErrInvalidValue, "metadata", "got a string"},
		refusal{"metadata too large", `{` + base + `,"metadata":{"x":"` + strings.Repeat("m", MaxMetadataSize) + `"}}`, ErrTooLarge, "metadata", "at most 16384"},
		refusal{"unknown field", `{` + base + `,"request_data":{}}`, ErrUnknownField, "request_data", "not part of the contract"},
		refusal{"wrong case", `{` + base + `,"Priority":"low"}`, ErrUnknownField, "Priority", "case-sensitive"},
	))
}

func TestDecodeReplayReply(t *testing.T) {
	t.Parallel()
	got, err := DecodeReplayReply([]byte(`{"ok": true}`))
	require.NoError(t, err)
	require.Equal(t, ReplayReply{OK: true}, got)
	got, err = DecodeReplayReply([]byte(`{"ok": false, "error": "card declined", "retryable": true}`))
	require.NoError(t, err)
	require.Equal(t, ReplayReply{Error: "card declined", Retryable: true}, got)
}

func TestDecodeReplayReplyRefuses(t *testing.T) {
	t.Parallel()
	runRefusals(t, DecodeReplayReply, append(slicesClone(syntaxRefusals),
		refusal{"too large", `{"ok":false,"error":"` + strings.Repeat("e", MaxReplayReplyBody) + `"}`, ErrTooLarge, "", "at most 32768"},
		refusal{"ok missing", `{"error":"x"}`, ErrMissingField, "ok", "is required (true or false)"},
		refusal{"ok null", `{"ok":null}`, ErrMissingField, "ok", "is required"},
		refusal{"ok string", `{"ok":"true"}`, ErrInvalidValue, "ok", "must be a JSON boolean"},
		refusal{"failure without error", `{"ok":false}`, ErrMissingField, "error", "is required"},
		refusal{"success with error", `{"ok":true,"error":"x"}`, ErrInvalidValue, "error", `"ok": true`},
		refusal{"success retryable", `{"ok":true,"retryable":true}`, ErrInvalidValue, "retryable", `"ok": true`},
		refusal{"error too long", `{"ok":false,"error":"` + strings.Repeat("e", MaxErrorMessageLen+1) + `"}`, ErrTooLarge, "error", "at most 16384"},
	))
}

func TestDecodePermit(t *testing.T) {
	t.Parallel()
	got, err := DecodePermitRequest([]byte(`{"node":"pod-7.payments"}`))
	require.NoError(t, err)
	require.Equal(t, PermitRequest{Node: "pod-7.payments"}, got)
	reply, err := DecodePermitReply([]byte(`{"granted":true,"state":"half_open","generation":7}`))
	require.NoError(t, err)
	require.Equal(t, PermitReply{Granted: true, State: domain.StateHalfOpen, Generation: 7}, reply)
}

func TestDecodePermitRequestRefuses(t *testing.T) {
	t.Parallel()
	runRefusals(t, DecodePermitRequest, append(slicesClone(syntaxRefusals),
		refusal{"too large", `{"node":"` + strings.Repeat("n", MaxPermitBody) + `"}`, ErrTooLarge, "", "at most 1024"},
		refusal{"node missing", `{}`, ErrMissingField, "node", "is required"},
		refusal{"node empty", `{"node":""}`, ErrMissingField, "node", "is required"},
		refusal{"node too long", `{"node":"` + strings.Repeat("n", 257) + `"}`, ErrTooLarge, "node", "at most 256"},
		refusal{"node control", `{"node":"a\tb"}`, ErrInvalidValue, "node", "control character"},
		refusal{"node number", `{"node":7}`, ErrInvalidValue, "node", "must be a JSON string"},
	))
}

func TestDecodePermitReplyRefuses(t *testing.T) {
	t.Parallel()
	runRefusals(t, DecodePermitReply, []refusal{
		{"unknown state", `{"granted":false,"state":"ajar","generation":1}`, ErrInvalidValue, "state", `is "ajar"`},
		{"negative generation", `{"granted":false,"state":"open","generation":-1}`, ErrInvalidValue, "generation", "integer"},
		{"unknown field", `{"granted":true,"state":"open","generation":1,"permits":3}`, ErrUnknownField, "permits", "not part"},
	})
}
