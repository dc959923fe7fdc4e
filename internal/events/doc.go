// Package events is Baldur's wire contract: the NATS subjects, the CloudEvents
// 1.0 envelope carried in NATS headers (binary mode), the JSON payloads, their
// limits and validation, and the strict decoders the workers run on every
// inbound message.
//
// The package performs no I/O. Publishers build a subject with one of the
// subject builders (OutcomeSubject, ControlSubject, ...), an Envelope with
// NewEnvelope, and a body by marshalling one of the payload types; NewMsg does
// all three and validates the payload on the way out. Consumers call Decode,
// which checks the subject, the envelope, that ce-type matches the subject,
// the per-type body limit, and decodes the body strictly: invalid JSON,
// unknown or duplicate fields, trailing data, and out-of-range values are all
// refused with an error that wraps one of the sentinel errors of errors.go and
// names the offending field. NewRejected turns such an error into the Rejected
// payload that workers publish on baldur.event.rejected.<kind>.
//
// docs/contract.md describes the same contract for services written in other
// languages.
package events
