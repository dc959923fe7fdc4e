package domain_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

func TestRetryPolicy_DefaultsAreTheSeeds(t *testing.T) {
	t.Parallel()
	p := domain.DefaultRetryPolicy()
	require.NoError(t, p.Validate())
	require.Equal(t, 5*time.Second, p.BaseDelay.D())
	require.Equal(t, 10*time.Minute, p.MaxDelay.D())
	require.InDelta(t, 2.0, p.Multiplier, 0)
	require.Greater(t, p.Jitter, 0.0)
}

func TestRetryPolicy_Validate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*domain.RetryPolicy)
		field  string
	}{
		{"zero base delay", func(p *domain.RetryPolicy) { p.BaseDelay = 0 }, "base_delay"},
		{"max below base", func(p *domain.RetryPolicy) { p.MaxDelay = domain.Duration(time.Second) }, "max_delay"},
		{"multiplier below one", func(p *domain.RetryPolicy) { p.Multiplier = 0.5 }, "multiplier"},
		{"multiplier NaN", func(p *domain.RetryPolicy) { p.Multiplier = nanValue() }, "multiplier"},
		{"negative jitter", func(p *domain.RetryPolicy) { p.Jitter = -0.1 }, "jitter"},
		{"jitter of one", func(p *domain.RetryPolicy) { p.Jitter = 1 }, "jitter"},
		{"zero no-responder delay", func(p *domain.RetryPolicy) { p.NoResponderDelay = 0 }, "no_responder_delay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := domain.DefaultRetryPolicy()
			tt.modify(&p)
			err := p.Validate()
			require.ErrorIs(t, err, domain.ErrInvalidRetryPolicy)
			require.ErrorContains(t, err, tt.field)
		})
	}
	require.ErrorContains(t, domain.RetryPolicy{}.Validate(), "base_delay",
		"the zero policy is invalid and says why")
}

func TestBackoff_DoublesFromFiveSecondsUpToTenMinutes(t *testing.T) {
	t.Parallel()
	p := domain.DefaultRetryPolicy()
	tests := []struct {
		retryCount int
		want       time.Duration
	}{
		{-3, 5 * time.Second},
		{0, 5 * time.Second},
		{1, 5 * time.Second},
		{2, 10 * time.Second},
		{3, 20 * time.Second},
		{4, 40 * time.Second},
		{7, 320 * time.Second},
		{8, 10 * time.Minute},
		{9, 10 * time.Minute},
		{5000, 10 * time.Minute},
		{1 << 30, 10 * time.Minute},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, p.Backoff(tt.retryCount, 0), "retry %d", tt.retryCount)
	}
}

func TestBackoff_JitterOnlyShortens(t *testing.T) {
	t.Parallel()
	p := domain.DefaultRetryPolicy() // jitter 0.2
	require.Equal(t, 4500*time.Millisecond, p.Backoff(1, 0.5))
	require.Equal(t, 9*time.Minute+36120*time.Millisecond, p.Backoff(100, 0.199))
	require.Equal(t, 5*time.Second, p.Backoff(1, 1.5), "jitter outside [0,1) is ignored")
	require.Equal(t, 5*time.Second, p.Backoff(1, -1), "jitter outside [0,1) is ignored")
}

func TestBackoff_PropertyNeverAboveCapNorBelowJitteredBase(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	for range 5000 {
		p := domain.RetryPolicy{
			BaseDelay:        domain.Duration(time.Duration(1+rng.IntN(60_000)) * time.Millisecond),
			Multiplier:       1 + rng.Float64()*4,
			Jitter:           rng.Float64() * 0.99,
			NoResponderDelay: domain.Duration(time.Second),
		}
		p.MaxDelay = p.BaseDelay + domain.Duration(rng.Int64N(int64(time.Hour)))
		require.NoError(t, p.Validate())
		n := rng.IntN(200) - 5
		r := rng.Float64()
		got := p.Backoff(n, r)
		require.LessOrEqual(t, got, p.MaxDelay.D(), "policy %+v retry %d r %v", p, n, r)
		require.GreaterOrEqual(t, float64(got), (1-p.Jitter)*float64(p.BaseDelay)-1, "policy %+v retry %d r %v", p, n, r)
		// Without jitter the wait never shrinks as retries grow.
		require.LessOrEqual(t, p.Backoff(n, 0), p.Backoff(n+1, 0))
	}
}

func TestSettle_SeedRules(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	prevRetry := at.Add(-time.Minute)
	prevDue := at.Add(-30 * time.Second)
	policy := domain.DefaultRetryPolicy()
	claimed := func(retryCount, maxRetries int) domain.DLQEntry {
		return domain.DLQEntry{ID: "e1", Status: domain.DLQReplaying, RetryCount: retryCount,
			MaxRetries: maxRetries, LastRetryAt: prevRetry, NextAttemptAt: prevDue, LastError: "earlier"}
	}
	tests := []struct {
		name    string
		entry   domain.DLQEntry
		attempt domain.Attempt
		want    domain.AttemptOutcome
	}{
		{
			name:    "ok is replayed with auto_replay",
			entry:   claimed(1, 2),
			attempt: domain.Attempt{Result: domain.AttemptOK, At: at},
			want: domain.AttemptOutcome{Status: domain.DLQReplayed, RetryCount: 1, LastRetryAt: at, NextAttemptAt: prevDue,
				LastError: "earlier", ResolutionType: domain.ResolutionAutoReplay, ResolvedAt: at, AttemptSpent: true},
		},
		{
			name:    "ok after a force-close is replayed too",
			entry:   claimed(0, 2),
			attempt: domain.Attempt{Result: domain.AttemptOK, ForceClose: true, At: at},
			want: domain.AttemptOutcome{Status: domain.DLQReplayed, LastRetryAt: at, NextAttemptAt: prevDue, LastError: "earlier",
				ResolutionType: domain.ResolutionAutoReplay, ResolvedAt: at, AttemptSpent: true},
		},
		{
			name:    "first failure retries after the base delay",
			entry:   claimed(0, 2),
			attempt: domain.Attempt{Result: domain.AttemptFailed, Error: "HTTP 503", At: at},
			want: domain.AttemptOutcome{Status: domain.DLQPending, RetryCount: 1, LastRetryAt: at,
				NextAttemptAt: at.Add(5 * time.Second), LastError: "HTTP 503",
				RecommendedAction: domain.RecommendReplay, AttemptSpent: true,
				AppendError: &domain.ErrorRecord{At: at, Attempt: 1, Error: "HTTP 503"}},
		},
		{
			name:    "later failure doubles the delay",
			entry:   claimed(2, 5),
			attempt: domain.Attempt{Result: domain.AttemptFailed, Error: "timeout", At: at},
			want: domain.AttemptOutcome{Status: domain.DLQPending, RetryCount: 3, LastRetryAt: at,
				NextAttemptAt: at.Add(20 * time.Second), LastError: "timeout",
				RecommendedAction: domain.RecommendReplay, AttemptSpent: true,
				AppendError: &domain.ErrorRecord{At: at, Attempt: 3, Error: "timeout"}},
		},
		{
			name:    "failure reaching max_retries requires review, unresolved",
			entry:   claimed(1, 2),
			attempt: domain.Attempt{Result: domain.AttemptFailed, Error: "timeout", At: at},
			want: domain.AttemptOutcome{Status: domain.DLQRequiresReview, RetryCount: 2, LastRetryAt: at, NextAttemptAt: prevDue,
				LastError: "timeout", RecommendedAction: domain.RecommendManualCheck,
				Escalation: domain.EscalationRetriesExhausted, AttemptSpent: true,
				AppendError: &domain.ErrorRecord{At: at, Attempt: 2, Error: "timeout"}},
		},
		{
			name:    "max_retries zero requires review after the first failure",
			entry:   claimed(0, 0),
			attempt: domain.Attempt{Result: domain.AttemptFailed, Error: "x", At: at},
			want: domain.AttemptOutcome{Status: domain.DLQRequiresReview, RetryCount: 1, LastRetryAt: at, NextAttemptAt: prevDue,
				LastError: "x", RecommendedAction: domain.RecommendManualCheck,
				Escalation: domain.EscalationRetriesExhausted, AttemptSpent: true,
				AppendError: &domain.ErrorRecord{At: at, Attempt: 1, Error: "x"}},
		},
		{
			name:    "not retryable requires review at once",
			entry:   claimed(0, 5),
			attempt: domain.Attempt{Result: domain.AttemptNotRetryable, Error: "card declined", At: at},
			want: domain.AttemptOutcome{Status: domain.DLQRequiresReview, RetryCount: 1, LastRetryAt: at, NextAttemptAt: prevDue,
				LastError: "card declined", RecommendedAction: domain.RecommendManualCheck,
				Escalation: domain.EscalationNotRetryable, AttemptSpent: true,
				AppendError: &domain.ErrorRecord{At: at, Attempt: 1, Error: "card declined"}},
		},
		{
			name:    "force-close failure escalates at once",
			entry:   claimed(0, 5),
			attempt: domain.Attempt{Result: domain.AttemptFailed, Error: "HTTP 500", ForceClose: true, At: at},
			want: domain.AttemptOutcome{Status: domain.DLQRequiresReview, RetryCount: 1, LastRetryAt: at, NextAttemptAt: prevDue,
				LastError: "HTTP 500", RecommendedAction: domain.RecommendEscalate,
				Escalation: domain.EscalationForceClose, AttemptSpent: true,
				AppendError: &domain.ErrorRecord{At: at, Attempt: 1, Error: "HTTP 500"}},
		},
		{
			name:    "no responders stays pending without spending an attempt",
			entry:   claimed(1, 2),
			attempt: domain.Attempt{Result: domain.AttemptNoResponders, At: at, Jitter: 0.9},
			want: domain.AttemptOutcome{Status: domain.DLQPending, RetryCount: 1, LastRetryAt: prevRetry,
				NextAttemptAt: at.Add(5 * time.Second), LastError: "earlier",
				RecommendedAction: domain.RecommendReplay},
		},
		{
			name:    "no responders after a force-close is not escalated",
			entry:   claimed(0, 2),
			attempt: domain.Attempt{Result: domain.AttemptNoResponders, ForceClose: true, At: at},
			want: domain.AttemptOutcome{Status: domain.DLQPending, LastRetryAt: prevRetry,
				NextAttemptAt: at.Add(5 * time.Second), LastError: "earlier",
				RecommendedAction: domain.RecommendReplay},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := policy.Settle(tt.entry, tt.attempt)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.True(t, domain.CanTransitionBy(domain.DLQActorReplay, tt.entry.Status, got.Status))
		})
	}
}

func TestSettle_JitteredRetryWithinBounds(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	p := domain.DefaultRetryPolicy()
	e := domain.DLQEntry{Status: domain.DLQReplaying, MaxRetries: 10}
	got, err := p.Settle(e, domain.Attempt{Result: domain.AttemptFailed, At: at, Jitter: 0.999})
	require.NoError(t, err)
	wait := got.NextAttemptAt.Sub(at)
	require.Greater(t, wait, 4*time.Second)
	require.Less(t, wait, 5*time.Second)
}

func TestSettle_Refuses(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	ok := domain.Attempt{Result: domain.AttemptOK, At: at}
	claimed := domain.DLQEntry{ID: "e1", Status: domain.DLQReplaying, MaxRetries: 2}
	tests := []struct {
		name    string
		entry   domain.DLQEntry
		attempt domain.Attempt
		is      error
		msg     string
	}{
		{"entry not claimed", domain.DLQEntry{ID: "e1", Status: domain.DLQPending}, ok, domain.ErrInvalidTransition, "entry e1"},
		{"entry already replayed", domain.DLQEntry{ID: "e1", Status: domain.DLQReplayed}, ok, domain.ErrInvalidTransition, "terminal"},
		{"unknown result", claimed, domain.Attempt{Result: "maybe", At: at}, domain.ErrInvalidAttempt, `"maybe"`},
		{"empty result", claimed, domain.Attempt{At: at}, domain.ErrInvalidAttempt, "unknown result"},
		{"jitter of one", claimed, domain.Attempt{Result: domain.AttemptOK, At: at, Jitter: 1}, domain.ErrInvalidAttempt, "jitter"},
		{"zero time", claimed, domain.Attempt{Result: domain.AttemptOK}, domain.ErrInvalidAttempt, "time"},
		{"negative retry count", domain.DLQEntry{Status: domain.DLQReplaying, RetryCount: -1}, ok, domain.ErrInvalidAttempt, "retry_count -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := domain.DefaultRetryPolicy().Settle(tt.entry, tt.attempt)
			require.ErrorIs(t, err, tt.is)
			require.ErrorContains(t, err, tt.msg)
		})
	}
}

func TestAttemptOutcome_PatchAppendsWithoutAliasing(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	history := make([]domain.ErrorRecord, 1, 4) // spare capacity must not be shared
	history[0] = domain.ErrorRecord{At: at.Add(-time.Hour), Attempt: 1, Error: "first"}
	e := domain.DLQEntry{ID: "e1", Status: domain.DLQReplaying, RetryCount: 1, MaxRetries: 3,
		ErrorHistory: history, RecommendedAction: domain.RecommendReplay}

	out, err := domain.DefaultRetryPolicy().Settle(e, domain.Attempt{Result: domain.AttemptFailed, Error: "second", At: at})
	require.NoError(t, err)
	got := out.Patch(e)

	require.Equal(t, domain.DLQPending, got.Status)
	require.Equal(t, 2, got.RetryCount)
	require.Equal(t, "second", got.LastError)
	require.Equal(t, at, got.LastRetryAt)
	require.Equal(t, at.Add(10*time.Second), got.NextAttemptAt)
	require.Equal(t, []domain.ErrorRecord{history[0], {At: at, Attempt: 2, Error: "second"}}, got.ErrorHistory)
	require.Len(t, e.ErrorHistory, 1, "the input entry is untouched")
	require.Equal(t, domain.DLQReplaying, e.Status)
	got.ErrorHistory[0].Error = "changed"
	require.Equal(t, "first", history[0].Error)

	okOut, err := domain.DefaultRetryPolicy().Settle(got, domain.Attempt{Result: domain.AttemptOK, At: at})
	require.ErrorIs(t, err, domain.ErrInvalidTransition, "a pending entry must be claimed first")
	require.Zero(t, okOut)
}

func ExampleRetryPolicy_Settle() {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	p := domain.DefaultRetryPolicy()
	e := domain.DLQEntry{ID: "order-123", Status: domain.DLQReplaying, MaxRetries: 2}
	for _, res := range []domain.AttemptResult{domain.AttemptFailed, domain.AttemptFailed} {
		out, err := p.Settle(e, domain.Attempt{Result: res, Error: "HTTP 503", At: at})
		if err != nil {
			panic(err)
		}
		e = out.Patch(e)
		next := "none"
		if e.Status == domain.DLQPending { // next_attempt_at only matters while pending
			next = e.NextAttemptAt.Sub(at).String()
		}
		fmt.Printf("%s retry_count=%d next_in=%s escalation=%q\n", e.Status, e.RetryCount, next, out.Escalation)
		e.Status = domain.DLQReplaying // claimed again when due
	}
	// Output:
	// pending retry_count=1 next_in=5s escalation=""
	// requires_review retry_count=2 next_in=none escalation="retries_exhausted"
}

func nanValue() float64 { return math.NaN() }
