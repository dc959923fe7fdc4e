package baldur

import (
	"errors"
	"time"
)

// Outcome is the result of one call to a service, as Record counts it.
type Outcome struct {
	// Err is the call's error; a non-nil Err is a failure.
	Err error
	// Failed marks a failure when there is no error value.
	Failed bool
	// Duration is how long the call took. A call that took at least the
	// service's slow_call_duration (when configured) is also a slow call.
	Duration time.Duration
	// FailureType names the kind of failure (e.g. "TIMEOUT", "HTTP_503"),
	// counted in the report's failure_types. Optional; when empty and Err
	// (or an error it wraps) has a method FailureType() string, that names
	// it. A name outside ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$, or beyond the
	// 31st distinct name of a service, is counted as OtherFailureType.
	FailureType string
}

// OtherFailureType counts failures whose type name is invalid or beyond the
// per-service bound.
const OtherFailureType = "OTHER"

// Success returns the outcome of a call that succeeded after d.
func Success(d time.Duration) Outcome { return Outcome{Duration: d} }

// Failure returns the outcome of a call that failed after d with the given
// failure type (empty for none).
func Failure(d time.Duration, failureType string) Outcome {
	return Outcome{Failed: true, Duration: d, FailureType: failureType}
}

// Result returns the outcome of a call that returned err after d: a failure
// when err is not nil.
func Result(err error, d time.Duration) Outcome { return Outcome{Err: err, Duration: d} }

// failed reports whether o is a failure.
func (o *Outcome) failed() bool { return o.Failed || o.Err != nil }

// failureTyper is implemented by errors that name their failure type.
type failureTyper interface{ FailureType() string }

// failureType returns o's failure type: FailureType, else the FailureType()
// of Err or of an error it wraps (a single chain; no allocation).
func (o *Outcome) failureType() string {
	if o.FailureType != "" {
		return o.FailureType
	}
	for err := o.Err; err != nil; err = errors.Unwrap(err) {
		if ft, ok := err.(failureTyper); ok {
			return ft.FailureType()
		}
	}
	return ""
}
