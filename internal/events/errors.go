package events

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them (test with errors.Is) and says which field or header is at fault.
var (
	// ErrInvalidSubject reports a subject that is not part of the contract, or
	// whose service name or event name is malformed.
	ErrInvalidSubject = errors.New("events: invalid subject")
	// ErrInvalidName reports a service name that does not match
	// ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$.
	ErrInvalidName = errors.New("events: invalid service name")
	// ErrMissingHeader reports a required CloudEvents header that is absent or
	// empty (ce-type, ce-id; ce-source on outcome reports).
	ErrMissingHeader = errors.New("events: missing header")
	// ErrInvalidHeader reports a header with a malformed value: a ce-id that is
	// not a UUID, a ce-time that is not RFC 3339, a ce-specversion other than
	// 1.0, a content-type other than application/json, a repeated header, or a
	// Nats-Msg-Id that differs from ce-id.
	ErrInvalidHeader = errors.New("events: invalid header")
	// ErrUnknownType reports a ce-type that is not one of the Type constants.
	ErrUnknownType = errors.New("events: unknown ce-type")
	// ErrTypeMismatch reports a known ce-type sent on a subject that carries
	// another type, or a body whose service differs from the subject's.
	ErrTypeMismatch = errors.New("events: ce-type does not match subject")
	// ErrTooLarge reports a body, or a field of it, over its limit.
	ErrTooLarge = errors.New("events: too large")
	// ErrBadJSON reports a body that is not valid JSON, is not a JSON object,
	// or has data after the object.
	ErrBadJSON = errors.New("events: invalid JSON")
	// ErrUnknownField reports a field the payload does not define (names are
	// case-sensitive: "Successes" is unknown).
	ErrUnknownField = errors.New("events: unknown field")
	// ErrDuplicateField reports a field given twice in one object.
	ErrDuplicateField = errors.New("events: duplicate field")
	// ErrMissingField reports a required field that is absent or empty.
	ErrMissingField = errors.New("events: missing field")
	// ErrInvalidValue reports a field whose value has the wrong JSON type or is
	// out of range, unknown, or inconsistent with another field.
	ErrInvalidValue = errors.New("events: invalid value")
)

// FieldError is a problem with one field of a payload. It wraps one of
// ErrUnknownField, ErrDuplicateField, ErrMissingField, ErrInvalidValue or
// ErrTooLarge.
type FieldError struct {
	// Payload names the body, e.g. "outcome report".
	Payload string
	// Field is the JSON name of the field, dotted for nested objects
	// ("override.failure_threshold", "failure_types.TIMEOUT").
	Field string
	// Problem says what is wrong, e.g. "is 5, more than failures (3)".
	Problem string
	// Err is the sentinel error.
	Err error
}

// Error implements error.
func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: field %q %s: %v", e.Payload, e.Field, e.Problem, e.Err)
}

// Unwrap returns the sentinel error.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(sentinel error, payload, field, format string, args ...any) *FieldError {
	return &FieldError{Payload: payload, Field: field, Problem: fmt.Sprintf(format, args...), Err: sentinel}
}

// codes maps each sentinel error to its short, stable code.
var codes = []struct {
	err  error
	code string
}{
	{ErrInvalidSubject, "invalid_subject"},
	{ErrInvalidName, "invalid_name"},
	{ErrMissingHeader, "missing_header"},
	{ErrInvalidHeader, "invalid_header"},
	{ErrUnknownType, "unknown_type"},
	{ErrTypeMismatch, "type_mismatch"},
	{ErrTooLarge, "too_large"},
	{ErrBadJSON, "bad_json"},
	{ErrUnknownField, "unknown_field"},
	{ErrDuplicateField, "duplicate_field"},
	{ErrMissingField, "missing_field"},
	{ErrInvalidValue, "invalid_value"},
}

// ErrorCode returns the short, stable code of the sentinel error err wraps
// ("too_large", "unknown_field", ...), "" for nil, and "internal" for an error
// that wraps none of them. Workers use it as a metric label and in
// Rejected.Code.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "internal"
}
