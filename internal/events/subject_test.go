package events

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

func TestValidateServiceName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		svc     string
		wantMsg string // "" = valid
	}{
		{"simple", "payments", ""},
		{"digits first", "9lives", ""},
		{"underscore and dash", "pay_ments-v2", ""},
		{"one char", "a", ""},
		{"max length", strings.Repeat("a", 64), ""},
		{"empty", "", "name is empty"},
		{"too long", strings.Repeat("a", 65), "is 65 bytes long, at most 64"},
		{"leading underscore", "_pay", `starts with '_' at position 0`},
		{"leading dash", "-pay", `starts with '-' at position 0`},
		{"dot", "pay.ments", `has the character '.' at position 3`},
		{"wildcard", "pay*", `has the character '*' at position 3`},
		{"gt", ">", `has the character '>' at position 0`},
		{"space", "pay ments", `has the character ' ' at position 3`},
		{"colon (cell separator)", "pay::eu", `has the character ':' at position 3`},
		{"non-ASCII", "paymént", `has the character 'é' (U+00E9) at position 4`},
		{"control", "pay\nments", `(U+000A) at position 3`},
		{"invalid UTF-8", "pay\xffments", `invalid UTF-8 byte 0xff at position 3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateServiceName(tt.svc)
			if tt.wantMsg == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidName)
			require.ErrorContains(t, err, tt.wantMsg)
		})
	}
}

func TestSubjectBuilders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		build func() (string, error)
		want  string
	}{
		{"outcome", func() (string, error) { return OutcomeSubject("payments") }, "baldur.outcome.payments"},
		{"control", func() (string, error) { return ControlSubject("payments") }, "baldur.control.payments"},
		{"dlq", func() (string, error) { return DLQSubject("payments") }, "baldur.dlq.payments"},
		{"replay", func() (string, error) { return ReplaySubject("payments") }, "baldur.replay.payments"},
		{"permit", func() (string, error) { return PermitSubject("payments") }, "baldur.permit.payments"},
		{"api", func() (string, error) { return APIDLQSubject(DLQOpReplayBatch) }, "baldur.api.dlq.replay_batch"},
		{"breaker event", func() (string, error) { return BreakerEventSubject("payments", BreakerHalfOpened) }, "baldur.event.breaker.payments.half_opened"},
		{"breaker filter", func() (string, error) { return BreakerEventFilter("payments") }, "baldur.event.breaker.payments.*"},
		{"replay event", func() (string, error) { return ReplayEventSubject("payments", ReplayBatchCompleted) }, "baldur.event.replay.payments.batch_completed"},
		{"replay filter", func() (string, error) { return ReplayEventFilter("payments") }, "baldur.event.replay.payments.*"},
		{"governance event", func() (string, error) { return GovernanceEventSubject(GovernanceErrorBudget) }, "baldur.event.governance.error_budget"},
		{"rejected", func() (string, error) { return RejectedSubject(RejectedDLQ) }, "baldur.event.rejected.dlq"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.build()
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestSubjectBuildersRefuse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		build   func() (string, error)
		wantErr error
	}{
		{"outcome bad name", func() (string, error) { return OutcomeSubject("a.b") }, ErrInvalidName},
		{"control empty", func() (string, error) { return ControlSubject("") }, ErrInvalidName},
		{"dlq wildcard", func() (string, error) { return DLQSubject("*") }, ErrInvalidName},
		{"replay too long", func() (string, error) { return ReplaySubject(strings.Repeat("x", 65)) }, ErrInvalidName},
		{"permit space", func() (string, error) { return PermitSubject("a b") }, ErrInvalidName},
		{"api unknown op", func() (string, error) { return APIDLQSubject("drop") }, ErrInvalidSubject},
		{"breaker unknown event", func() (string, error) { return BreakerEventSubject("p", "exploded") }, ErrInvalidSubject},
		{"breaker bad name", func() (string, error) { return BreakerEventSubject("p.q", BreakerOpened) }, ErrInvalidName},
		{"replay unknown event", func() (string, error) { return ReplayEventSubject("p", "done") }, ErrInvalidSubject},
		{"governance unknown key", func() (string, error) { return GovernanceEventSubject("aggregate") }, ErrInvalidSubject},
		{"rejected unknown kind", func() (string, error) { return RejectedSubject("x") }, ErrInvalidSubject},
		{"breaker filter bad name", func() (string, error) { return BreakerEventFilter(">") }, ErrInvalidName},
		{"replay filter bad name", func() (string, error) { return ReplayEventFilter("") }, ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.build()
			require.ErrorIs(t, err, tt.wantErr)
			require.Empty(t, got)
		})
	}
}

func TestMustSubjects(t *testing.T) {
	t.Parallel()
	require.Equal(t, "baldur.outcome.a", MustOutcomeSubject("a"))
	require.Equal(t, "baldur.control.a", MustControlSubject("a"))
	require.Equal(t, "baldur.dlq.a", MustDLQSubject("a"))
	require.Equal(t, "baldur.replay.a", MustReplaySubject("a"))
	require.Equal(t, "baldur.permit.a", MustPermitSubject("a"))
	require.Panics(t, func() { MustOutcomeSubject("a.b") })
}

func TestParseSubject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		subject string
		want    Subject
	}{
		{"baldur.outcome.payments", Subject{Kind: SubjectOutcome, Service: "payments"}},
		{"baldur.control.payments", Subject{Kind: SubjectControl, Service: "payments"}},
		{"baldur.governance", Subject{Kind: SubjectGovernanceCommand}},
		{"baldur.dlq.payments", Subject{Kind: SubjectDLQ, Service: "payments"}},
		{"baldur.replay.payments", Subject{Kind: SubjectReplay, Service: "payments"}},
		{"baldur.permit.payments", Subject{Kind: SubjectPermit, Service: "payments"}},
		{"baldur.api.dlq.stats", Subject{Kind: SubjectAPIDLQ, Name: "stats"}},
		{"baldur.event.breaker.payments.opened", Subject{Kind: SubjectBreakerEvent, Service: "payments", Name: "opened"}},
		{"baldur.event.breaker.payments.mode_changed", Subject{Kind: SubjectBreakerEvent, Service: "payments", Name: "mode_changed"}},
		{"baldur.event.replay.payments.escalated", Subject{Kind: SubjectReplayEvent, Service: "payments", Name: "escalated"}},
		{"baldur.event.governance.kill_switch", Subject{Kind: SubjectGovernanceEvent, Name: "kill_switch"}},
		{"baldur.event.rejected.outcome", Subject{Kind: SubjectRejectedEvent, Name: "outcome"}},
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSubject(tt.subject)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.subject, got.String(), "String rebuilds the subject")
			require.NotEqual(t, "unknown", got.Kind.String())
		})
	}
}

func TestParseSubjectRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		subject string
		wantMsg string
		isName  bool
	}{
		{"", `does not start with "baldur."`, false},
		{"other.outcome.x", `does not start with "baldur."`, false},
		{"baldur", `does not start with "baldur."`, false},
		{"baldur.outcome", "name is empty", true},
		{"baldur.outcome.", "name is empty", true},
		{"baldur.outcome.a.b", "has the character '.' at position 1", true},
		{"baldur.outcome.*", "has the character '*'", true},
		{"baldur.outcome.>", "has the character '>'", true},
		{"baldur.control._x", "starts with '_'", true},
		{"baldur.governance.x", "no further token", false},
		{"baldur.api.dlq.drop", "is not a DLQ endpoint", false},
		{"baldur.api.other.list", "is not a DLQ endpoint", false},
		{"baldur.event.breaker.payments", "want baldur.event.breaker.<service>.<event>", false},
		{"baldur.event.breaker.payments.exploded", `unknown breaker event "exploded"`, false},
		{"baldur.event.breaker.a.b.opened", "has the character '.'", true},
		{"baldur.event.replay.payments.done", `unknown replay event "done"`, false},
		{"baldur.event.governance.aggregate", `unknown governance key "aggregate"`, false},
		{"baldur.event.rejected.nope", `unknown rejected kind "nope"`, false},
		{"baldur.event.audit.x", `unknown event family "audit"`, false},
		{"baldur.metrics.x", `unknown subject family "metrics"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			t.Parallel()
			_, err := ParseSubject(tt.subject)
			require.ErrorIs(t, err, ErrInvalidSubject)
			require.ErrorContains(t, err, tt.wantMsg)
			if tt.isName {
				require.ErrorIs(t, err, ErrInvalidName)
			}
		})
	}
}

func TestBreakerEventFor(t *testing.T) {
	t.Parallel()
	require.Equal(t, BreakerOpened, BreakerEventFor(domain.StateClosed, domain.StateOpen))
	require.Equal(t, BreakerOpened, BreakerEventFor(domain.StateHalfOpen, domain.StateOpen))
	require.Equal(t, BreakerHalfOpened, BreakerEventFor(domain.StateOpen, domain.StateHalfOpen))
	require.Equal(t, BreakerClosed, BreakerEventFor(domain.StateHalfOpen, domain.StateClosed))
	require.Equal(t, BreakerModeChanged, BreakerEventFor(domain.StateClosed, domain.StateClosed))
}

func TestWildcardsMatchBuilders(t *testing.T) {
	t.Parallel()
	// Each builder's output is matched by the wildcard a worker subscribes to.
	match := func(filter, subject string) bool {
		f, s := strings.Split(filter, "."), strings.Split(subject, ".")
		for i, tok := range f {
			if tok == ">" {
				return len(s) > i
			}
			if i >= len(s) || (tok != "*" && tok != s[i]) {
				return false
			}
		}
		return len(f) == len(s)
	}
	require.True(t, match(FilterOutcome, MustOutcomeSubject("a")))
	require.True(t, match(FilterControl, MustControlSubject("a")))
	require.True(t, match(FilterDLQ, MustDLQSubject("a")))
	require.True(t, match(FilterReplay, MustReplaySubject("a")))
	require.True(t, match(FilterPermit, MustPermitSubject("a")))
	api, _ := APIDLQSubject(DLQOpGet)
	require.True(t, match(FilterAPIDLQ, api))
	be, _ := BreakerEventSubject("a", BreakerClosed)
	require.True(t, match(FilterBreakerEvents, be))
	require.True(t, match(FilterEvents, be))
	re, _ := ReplayEventSubject("a", ReplayFailed)
	require.True(t, match(FilterReplayEvents, re))
	ge, _ := GovernanceEventSubject(GovernanceKillSwitch)
	require.True(t, match(FilterGovernanceEvents, ge))
	rj, _ := RejectedSubject(RejectedConfig)
	require.True(t, match(FilterRejectedEvents, rj))
	require.False(t, match(FilterOutcome, MustControlSubject("a")))
}

func TestSubjectAllocations(t *testing.T) {
	// Not parallel: AllocsPerRun is disturbed by concurrent tests.
	require.Zero(t, testing.AllocsPerRun(100, func() { _ = ValidateServiceName("payments-v2") }))
	require.Zero(t, testing.AllocsPerRun(100, func() { _, _ = ParseSubject("baldur.outcome.payments") }))
	require.Zero(t, testing.AllocsPerRun(100, func() { _, _ = ParseSubject("baldur.event.breaker.payments.opened") }))
	require.LessOrEqual(t, testing.AllocsPerRun(100, func() { _, _ = OutcomeSubject("payments") }), 1.0)
}

func BenchmarkOutcomeSubject(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = OutcomeSubject("payments-eu-west")
	}
}

func BenchmarkParseSubject(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = ParseSubject("baldur.outcome.payments-eu-west")
	}
}
