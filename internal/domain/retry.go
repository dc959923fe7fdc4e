package domain

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Retry defaults (the seed's replay backoff).
const (
	// DefaultRetryBaseDelay is the wait before the first retry.
	DefaultRetryBaseDelay = 5 * time.Second
	// DefaultRetryMaxDelay caps every wait.
	DefaultRetryMaxDelay = 10 * time.Minute
	// DefaultRetryMultiplier doubles the wait after each failed attempt.
	DefaultRetryMultiplier = 2.0
	// DefaultRetryJitter takes up to 20 % off each wait, so that entries that
	// failed together do not all come due at the same instant.
	DefaultRetryJitter = 0.2
	// DefaultNoResponderDelay is how far next_attempt_at is pushed when nobody
	// answered the replay request: short, since no attempt was spent.
	DefaultNoResponderDelay = 5 * time.Second
)

// RetryPolicy says when a failed replay is tried again.
//
// The n-th failed attempt (n = retry_count after the failure, n ≥ 1) waits
//
//	min(BaseDelay × Multiplier^(n-1), MaxDelay) × (1 − Jitter × r)
//
// where r in [0, 1) is the caller's random value. Jitter only ever shortens the
// wait, so the wait never exceeds MaxDelay and is never below
// (1 − Jitter) × the un-jittered wait.
type RetryPolicy struct {
	BaseDelay        Duration `json:"base_delay"`
	MaxDelay         Duration `json:"max_delay"`
	Multiplier       float64  `json:"multiplier"`
	Jitter           float64  `json:"jitter"`
	NoResponderDelay Duration `json:"no_responder_delay"`
}

// DefaultRetryPolicy returns the seed's policy: 5 s, doubling, at most 10 min,
// up to 20 % jitter; 5 s after a replay nobody answered.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		BaseDelay:        Duration(DefaultRetryBaseDelay),
		MaxDelay:         Duration(DefaultRetryMaxDelay),
		Multiplier:       DefaultRetryMultiplier,
		Jitter:           DefaultRetryJitter,
		NoResponderDelay: Duration(DefaultNoResponderDelay),
	}
}

// Validate returns an error wrapping ErrInvalidRetryPolicy that names every
// field out of range, or nil.
func (p RetryPolicy) Validate() error {
	var errs []error
	if p.BaseDelay <= 0 {
		errs = append(errs, fmt.Errorf("base_delay %s must be positive", p.BaseDelay))
	}
	if p.MaxDelay < p.BaseDelay {
		errs = append(errs, fmt.Errorf("max_delay %s must not be below base_delay %s", p.MaxDelay, p.BaseDelay))
	}
	if !(p.Multiplier >= 1) || math.IsInf(p.Multiplier, 0) {
		errs = append(errs, fmt.Errorf("multiplier %v must be a finite number ≥ 1", p.Multiplier))
	}
	if !(p.Jitter >= 0 && p.Jitter < 1) {
		errs = append(errs, fmt.Errorf("jitter %v must be in [0, 1)", p.Jitter))
	}
	if p.NoResponderDelay <= 0 {
		errs = append(errs, fmt.Errorf("no_responder_delay %s must be positive", p.NoResponderDelay))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidRetryPolicy, errors.Join(errs...))
}

// Backoff returns the wait after the failed attempt that brought retry_count to
// retryCount, with jitter r in [0, 1). retryCount below 1 is treated as 1 and r
// outside [0, 1) as 0. The result is always within
// [(1 − Jitter) × BaseDelay, MaxDelay] for a valid policy.
func (p RetryPolicy) Backoff(retryCount int, r float64) time.Duration {
	if retryCount < 1 {
		retryCount = 1
	}
	if !(r >= 0 && r < 1) {
		r = 0
	}
	base, ceiling := float64(p.BaseDelay), float64(p.MaxDelay)
	// Pow may overflow to +Inf for a large retryCount; Min brings it back to
	// the ceiling.
	d := math.Min(base*math.Pow(p.Multiplier, float64(retryCount-1)), ceiling)
	if math.IsNaN(d) { // only for an invalid policy (0 × Inf)
		d = ceiling
	}
	d *= 1 - p.Jitter*r
	return time.Duration(math.Min(d, ceiling))
}

// AttemptResult is how one replay delivery ended.
type AttemptResult string

// Attempt results.
const (
	// AttemptOK: the service answered {"ok": true}.
	AttemptOK AttemptResult = "ok"
	// AttemptFailed: the service answered {"ok": false, "retryable": true}, or
	// the request timed out.
	AttemptFailed AttemptResult = "failed"
	// AttemptNotRetryable: the service answered {"ok": false, "retryable": false}.
	AttemptNotRetryable AttemptResult = "not_retryable"
	// AttemptNoResponders: nobody serves baldur.replay.<svc>; no attempt is
	// spent.
	AttemptNoResponders AttemptResult = "no_responders"
)

// Valid reports whether r is a known attempt result.
func (r AttemptResult) Valid() bool {
	switch r {
	case AttemptOK, AttemptFailed, AttemptNotRetryable, AttemptNoResponders:
		return true
	}
	return false
}

// Attempt is one replay delivery and what came of it.
type Attempt struct {
	Result AttemptResult
	// Error is the service's error text (or the transport's) for a failed
	// attempt.
	Error string
	// ForceClose is set when the replay was triggered by an operator's
	// force-close: any failure escalates to requires_review at once (seed).
	ForceClose bool
	// At is when the attempt ended.
	At time.Time
	// Jitter is a random value in [0, 1) for the retry backoff.
	Jitter float64
}

// Escalation says why an attempt sent an entry to requires_review.
type Escalation string

// Escalation reasons.
const (
	// EscalationNone: the entry was not escalated.
	EscalationNone Escalation = ""
	// EscalationRetriesExhausted: retry_count reached max_retries.
	EscalationRetriesExhausted Escalation = "retries_exhausted"
	// EscalationNotRetryable: the service said the failure is not retryable.
	EscalationNotRetryable Escalation = "not_retryable"
	// EscalationForceClose: the replay came from an operator's force-close.
	EscalationForceClose Escalation = "force_close"
)

// AttemptOutcome is what a settled attempt writes to its entry: every field
// is the value to store. Fields the attempt does not change are carried over
// from the entry (LastError, LastRetryAt, and NextAttemptAt, which only matters
// while pending and is NOT NULL in the store). An empty ResolutionType or
// RecommendedAction and a zero ResolvedAt mean "none".
type AttemptOutcome struct {
	Status            DLQStatus
	RetryCount        int
	LastRetryAt       time.Time
	NextAttemptAt     time.Time
	LastError         string
	ResolutionType    ResolutionType
	RecommendedAction RecommendedAction
	ResolvedAt        time.Time
	// Escalation says why Status is requires_review, if it is.
	Escalation Escalation
	// AppendError is the record to append to the error history, or nil.
	AppendError *ErrorRecord
	// AttemptSpent reports whether the attempt counted against max_retries.
	AttemptSpent bool
}

// Settle decides what a replay attempt does to the entry it was made for. The
// entry must be as claimed for the attempt (status replaying). The rules (seed):
//
//   - ok → replayed, resolution auto_replay, resolved_at = At.
//   - no responders → pending again, retry_count unchanged, no error recorded,
//     next_attempt_at = At + NoResponderDelay; also for a force-close replay,
//     since nothing was attempted.
//   - any other result spends an attempt (retry_count + 1, last_retry_at = At,
//     the error appended to the history) and then:
//     a force-close replay escalates to requires_review at once (recommended
//     action escalate); a not-retryable failure goes to requires_review at once
//     (manual_check); a retryable failure goes back to pending with
//     next_attempt_at = At + Backoff(retry_count) while retry_count <
//     max_retries, else to requires_review (manual_check).
//
// An escalated entry is not resolved: its resolution type stays empty (the
// seed's max_retries_exhausted is recorded only if an operator later closes the
// entry for that reason), and recommended_action tells the operator what to do.
//
// Errors wrap ErrInvalidAttempt (unknown result, jitter outside [0, 1), zero
// time, negative counters) or ErrInvalidTransition (entry not replaying).
func (p RetryPolicy) Settle(e DLQEntry, a Attempt) (AttemptOutcome, error) {
	switch {
	case !a.Result.Valid():
		return AttemptOutcome{}, fmt.Errorf("%w: unknown result %q", ErrInvalidAttempt, a.Result)
	case !(a.Jitter >= 0 && a.Jitter < 1):
		return AttemptOutcome{}, fmt.Errorf("%w: jitter %v is outside [0, 1)", ErrInvalidAttempt, a.Jitter)
	case a.At.IsZero():
		return AttemptOutcome{}, fmt.Errorf("%w: attempt time is zero", ErrInvalidAttempt)
	case e.RetryCount < 0 || e.MaxRetries < 0:
		return AttemptOutcome{}, fmt.Errorf("%w: entry %s has retry_count %d, max_retries %d; neither may be negative",
			ErrInvalidAttempt, e.ID, e.RetryCount, e.MaxRetries)
	}

	out := AttemptOutcome{
		RetryCount:    e.RetryCount,
		LastRetryAt:   e.LastRetryAt,
		NextAttemptAt: e.NextAttemptAt,
		LastError:     e.LastError,
	}
	switch a.Result {
	case AttemptOK:
		out.Status = DLQReplayed
		out.LastRetryAt = a.At
		out.ResolutionType = ResolutionAutoReplay
		out.ResolvedAt = a.At
		out.AttemptSpent = true
	case AttemptNoResponders:
		out.Status = DLQPending
		out.NextAttemptAt = a.At.Add(p.NoResponderDelay.D())
		out.RecommendedAction = RecommendReplay
	default:
		out.AttemptSpent = true
		out.RetryCount = e.RetryCount + 1
		out.LastRetryAt = a.At
		out.LastError = a.Error
		out.AppendError = &ErrorRecord{At: a.At, Attempt: out.RetryCount, Error: a.Error}
		switch {
		case a.ForceClose:
			out.Status = DLQRequiresReview
			out.Escalation = EscalationForceClose
			out.RecommendedAction = RecommendEscalate
		case a.Result == AttemptNotRetryable:
			out.Status = DLQRequiresReview
			out.Escalation = EscalationNotRetryable
			out.RecommendedAction = RecommendManualCheck
		case out.RetryCount >= e.MaxRetries:
			out.Status = DLQRequiresReview
			out.Escalation = EscalationRetriesExhausted
			out.RecommendedAction = RecommendManualCheck
		default:
			out.Status = DLQPending
			out.NextAttemptAt = a.At.Add(p.Backoff(out.RetryCount, a.Jitter))
			out.RecommendedAction = RecommendReplay
		}
	}
	if err := CheckTransition(e.Status, out.Status); err != nil {
		return AttemptOutcome{}, fmt.Errorf("settle attempt for entry %s: %w", e.ID, err)
	}
	return out, nil
}

// Patch returns e with the outcome written into it: status, counters, times,
// last error, resolution, recommended action, and the error record appended to
// a fresh copy of the history (e's history is not modified). UpdatedAt is left
// to the caller.
func (o AttemptOutcome) Patch(e DLQEntry) DLQEntry {
	e.Status = o.Status
	e.RetryCount = o.RetryCount
	e.LastRetryAt = o.LastRetryAt
	e.NextAttemptAt = o.NextAttemptAt
	e.LastError = o.LastError
	e.ResolutionType = o.ResolutionType
	e.RecommendedAction = o.RecommendedAction
	e.ResolvedAt = o.ResolvedAt
	if o.AppendError != nil {
		h := make([]ErrorRecord, len(e.ErrorHistory), len(e.ErrorHistory)+1)
		copy(h, e.ErrorHistory)
		e.ErrorHistory = append(h, *o.AppendError)
	}
	return e
}
