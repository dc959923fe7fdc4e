package domain

import (
	"fmt"
	"slices"
	"time"
)

// InitialDLQStatus is the status ingest gives every new entry. Ingest creates
// entries; it never moves an existing one.
const InitialDLQStatus = DLQPending

// Valid reports whether s is one of DLQStatuses.
func (s DLQStatus) Valid() bool { return slices.Contains(DLQStatuses, s) }

// Terminal reports whether s is final: no transition leaves it. replayed is
// terminal because it is the idempotency gate (an entry that was delivered
// successfully is never delivered again); resolved, rejected, archived,
// expired and permanently_failed are terminal because an operator or the
// retention rules closed the entry. Retention may delete terminal rows; that
// is a deletion, not a transition. An unknown status is not terminal.
func (s DLQStatus) Terminal() bool {
	switch s {
	case DLQReplayed, DLQResolved, DLQRejected, DLQArchived, DLQExpired, DLQPermanentlyFailed:
		return true
	}
	return false
}

// Live reports whether s is a known, non-terminal status: pending, replaying,
// requires_review or reviewing. The uniqueness of (service, idempotency_key)
// applies to live entries only, so a dead letter whose earlier twin was
// replayed or closed is ingested as a new entry.
func (s DLQStatus) Live() bool { return s.Valid() && !s.Terminal() }

// DLQLiveStatusesSQL lists the live statuses as a SQL list body, for the
// partial unique index on (service, idempotency_key) and for queries that must
// agree with Live: status IN ('pending','replaying','requires_review','reviewing').
const DLQLiveStatusesSQL = `'pending','replaying','requires_review','reviewing'`

// DLQActor names who takes a status transition.
type DLQActor string

// Actors of DLQ transitions.
const (
	// DLQActorIngest is the replay-worker's ingest of dead letters; it only
	// creates entries in InitialDLQStatus.
	DLQActorIngest DLQActor = "ingest"
	// DLQActorReplay is the replay engine: claims entries and settles attempts,
	// whether the replay was triggered by a breaker close or by an operator's
	// replay request.
	DLQActorReplay DLQActor = "replay"
	// DLQActorOperator is a person or tool acting through the DLQ endpoints,
	// always with an actor and a reason, always audited.
	DLQActorOperator DLQActor = "operator"
	// DLQActorWatchdog is the watchdog: lease rescue and retention.
	DLQActorWatchdog DLQActor = "watchdog"
)

// DLQTransition is one allowed edge of the dead-letter state machine.
type DLQTransition struct {
	From DLQStatus
	To   DLQStatus
	// By lists who may take the edge.
	By []DLQActor
	// Why says when the edge is taken.
	Why string
}

// dlqTransitions is the whole state machine. Every edge not listed is refused,
// in particular every edge out of a terminal status and every self-loop.
//
// While an entry is replaying it is leased by one replay-worker (fenced), so
// only the replay engine and the watchdog's lease rescue may move it; an
// operator must wait for the attempt to settle.
var dlqTransitions = []DLQTransition{
	// pending
	{DLQPending, DLQReplaying, []DLQActor{DLQActorReplay}, "claim: a replay takes the entry under its lease"},
	{DLQPending, DLQReviewing, []DLQActor{DLQActorOperator}, "an operator takes the entry for review"},
	{DLQPending, DLQResolved, []DLQActor{DLQActorOperator}, "an operator marks the entry resolved (manual fix)"},
	{DLQPending, DLQRejected, []DLQActor{DLQActorOperator}, "an operator discards the entry"},
	{DLQPending, DLQArchived, []DLQActor{DLQActorOperator}, "an operator archives the entry"},
	{DLQPending, DLQExpired, []DLQActor{DLQActorWatchdog}, "retention: expires_at has passed"},

	// replaying
	{DLQReplaying, DLQReplayed, []DLQActor{DLQActorReplay}, "the service answered ok"},
	{DLQReplaying, DLQPending, []DLQActor{DLQActorReplay, DLQActorWatchdog},
		"a retry is scheduled, or no responder answered (no attempt spent), or the watchdog rescues an entry whose lease expired"},
	{DLQReplaying, DLQRequiresReview, []DLQActor{DLQActorReplay},
		"retries exhausted, the failure is not retryable, or the replay came from an operator's force-close"},

	// requires_review
	{DLQRequiresReview, DLQReviewing, []DLQActor{DLQActorOperator}, "an operator takes the entry for review"},
	{DLQRequiresReview, DLQPending, []DLQActor{DLQActorOperator}, "an operator requeues the entry"},
	{DLQRequiresReview, DLQReplaying, []DLQActor{DLQActorReplay}, "claim for an operator's replay of this entry"},
	{DLQRequiresReview, DLQResolved, []DLQActor{DLQActorOperator}, "an operator marks the entry resolved (manual fix)"},
	{DLQRequiresReview, DLQRejected, []DLQActor{DLQActorOperator}, "an operator discards the entry"},
	{DLQRequiresReview, DLQArchived, []DLQActor{DLQActorOperator}, "an operator archives the entry"},
	{DLQRequiresReview, DLQPermanentlyFailed, []DLQActor{DLQActorOperator}, "an operator gives up: the operation can never succeed"},
	{DLQRequiresReview, DLQExpired, []DLQActor{DLQActorWatchdog}, "retention: expires_at has passed"},

	// reviewing
	{DLQReviewing, DLQRequiresReview, []DLQActor{DLQActorOperator}, "an operator hands the entry back without a decision"},
	{DLQReviewing, DLQPending, []DLQActor{DLQActorOperator}, "an operator requeues the entry"},
	{DLQReviewing, DLQReplaying, []DLQActor{DLQActorReplay}, "claim for an operator's replay of this entry"},
	{DLQReviewing, DLQResolved, []DLQActor{DLQActorOperator}, "an operator marks the entry resolved (manual fix)"},
	{DLQReviewing, DLQRejected, []DLQActor{DLQActorOperator}, "an operator discards the entry"},
	{DLQReviewing, DLQArchived, []DLQActor{DLQActorOperator}, "an operator archives the entry"},
	{DLQReviewing, DLQPermanentlyFailed, []DLQActor{DLQActorOperator}, "an operator gives up: the operation can never succeed"},
	{DLQReviewing, DLQExpired, []DLQActor{DLQActorWatchdog}, "retention: expires_at has passed"},
}

// DLQTransitions returns a copy of every allowed edge of the dead-letter state
// machine, with who takes it and why. It is the documentation of the table
// that CanTransition enforces.
func DLQTransitions() []DLQTransition {
	out := make([]DLQTransition, len(dlqTransitions))
	for i, t := range dlqTransitions {
		t.By = slices.Clone(t.By)
		out[i] = t
	}
	return out
}

// DLQTransitionsFrom returns the statuses reachable from `from` in one step,
// in table order. It is empty for terminal and unknown statuses.
func DLQTransitionsFrom(from DLQStatus) []DLQStatus {
	var out []DLQStatus
	for _, t := range dlqTransitions {
		if t.From == from {
			out = append(out, t.To)
		}
	}
	return out
}

// CanTransition reports whether an entry may move from one status to another.
// Self-loops, edges out of terminal statuses and unknown statuses are refused.
func CanTransition(from, to DLQStatus) bool {
	_, ok := findDLQTransition(from, to)
	return ok
}

// CanTransitionBy reports whether actor may move an entry from one status to
// another.
func CanTransitionBy(actor DLQActor, from, to DLQStatus) bool {
	t, ok := findDLQTransition(from, to)
	return ok && slices.Contains(t.By, actor)
}

// CheckTransition returns nil when CanTransition(from, to), else an error
// wrapping ErrInvalidTransition (and ErrUnknownDLQStatus for an unknown
// status) that names both statuses.
func CheckTransition(from, to DLQStatus) error {
	switch {
	case !from.Valid():
		return fmt.Errorf("%w: %q → %q: %w %q", ErrInvalidTransition, from, to, ErrUnknownDLQStatus, from)
	case !to.Valid():
		return fmt.Errorf("%w: %q → %q: %w %q", ErrInvalidTransition, from, to, ErrUnknownDLQStatus, to)
	case from.Terminal():
		return fmt.Errorf("%w: %q → %q: %s is terminal", ErrInvalidTransition, from, to, from)
	case from == to:
		return fmt.Errorf("%w: %q → %q: the entry is already %s", ErrInvalidTransition, from, to, to)
	case !CanTransition(from, to):
		return fmt.Errorf("%w: %q → %q: not an edge of the DLQ state machine", ErrInvalidTransition, from, to)
	}
	return nil
}

func findDLQTransition(from, to DLQStatus) (DLQTransition, bool) {
	for _, t := range dlqTransitions {
		if t.From == from && t.To == to {
			return t, true
		}
	}
	return DLQTransition{}, false
}

// DefaultResolution is the resolution type recorded when an entry enters the
// terminal status `to`: auto_replay for replayed, manual_fix for resolved,
// rejected for rejected, archived for archived, ttl_expired for expired. It is
// empty for permanently_failed (the operator says why in resolution_note) and
// for non-terminal statuses, which carry no resolution: an entry escalated to
// requires_review is not resolved, so its resolution stays empty and its
// recommended_action says what to do.
func DefaultResolution(to DLQStatus) ResolutionType {
	switch to {
	case DLQReplayed:
		return ResolutionAutoReplay
	case DLQResolved:
		return ResolutionManualFix
	case DLQRejected:
		return ResolutionRejected
	case DLQArchived:
		return ResolutionArchived
	case DLQExpired:
		return ResolutionTTLExpired
	}
	return ""
}

// RequeueEntry returns e put back in the queue by an operator (from
// requires_review or reviewing): status pending, due at once (next_attempt_at =
// at), with a fresh allowance of max_retries attempts (retry_count 0; the error
// history is kept), no recommended action and no resolution. Without the reset
// the first failure after a requeue would escalate the entry again at once.
// The error wraps ErrInvalidTransition.
func RequeueEntry(e DLQEntry, at time.Time) (DLQEntry, error) {
	if err := CheckTransition(e.Status, DLQPending); err != nil {
		return DLQEntry{}, fmt.Errorf("requeue entry %s: %w", e.ID, err)
	}
	if e.Status == DLQReplaying {
		return DLQEntry{}, fmt.Errorf("requeue entry %s: %w: %q → %q: the entry is being replayed",
			e.ID, ErrInvalidTransition, e.Status, DLQPending)
	}
	e.Status = DLQPending
	e.RetryCount = 0
	e.NextAttemptAt = at
	e.RecommendedAction = ""
	e.ResolutionType = ""
	e.ResolutionNote = ""
	e.ResolvedAt = time.Time{}
	e.UpdatedAt = at
	return e, nil
}

// CloseEntry returns e moved by an operator or the watchdog to the terminal
// status `to` (resolved, rejected, archived, expired or permanently_failed),
// with resolution DefaultResolution(to), the note and resolved_at = at;
// next_attempt_at is left as it was (it only matters while pending). The error
// wraps ErrInvalidTransition when `to` is not terminal, is replayed (only
// Settle marks an entry replayed), or is not reachable from e's status.
func CloseEntry(e DLQEntry, to DLQStatus, note string, at time.Time) (DLQEntry, error) {
	switch {
	case !to.Terminal():
		return DLQEntry{}, fmt.Errorf("close entry %s: %w: %q → %q: %s is not terminal",
			e.ID, ErrInvalidTransition, e.Status, to, to)
	case to == DLQReplayed:
		return DLQEntry{}, fmt.Errorf("close entry %s: %w: %q → %q: only a successful replay marks an entry replayed",
			e.ID, ErrInvalidTransition, e.Status, to)
	}
	if err := CheckTransition(e.Status, to); err != nil {
		return DLQEntry{}, fmt.Errorf("close entry %s: %w", e.ID, err)
	}
	e.Status = to
	e.ResolutionType = DefaultResolution(to)
	e.ResolutionNote = note
	e.ResolvedAt = at
	e.RecommendedAction = ""
	e.UpdatedAt = at
	return e, nil
}

// Valid reports whether d is one of FailureDomains.
func (d FailureDomain) Valid() bool { return slices.Contains(FailureDomains, d) }

// ParseFailureDomain reads a failure domain from the wire. An empty string is
// DomainCustom: a dead letter is never refused for lacking a domain, since
// refusing it would lose it. Any other unknown value is an error wrapping
// ErrInvalidFailureDomain.
func ParseFailureDomain(s string) (FailureDomain, error) {
	if s == "" {
		return DomainCustom, nil
	}
	d := FailureDomain(s)
	if !d.Valid() {
		return "", fmt.Errorf("%w %q: want one of %v", ErrInvalidFailureDomain, s, FailureDomains)
	}
	return d, nil
}

// ResolutionTypes lists every resolution type.
var ResolutionTypes = []ResolutionType{ResolutionAutoReplay, ResolutionManualFix, ResolutionRejected,
	ResolutionExpired, ResolutionInternalError, ResolutionArchived, ResolutionMaxRetriesExhausted,
	ResolutionTTLExpired}

// Valid reports whether r is one of ResolutionTypes.
func (r ResolutionType) Valid() bool { return slices.Contains(ResolutionTypes, r) }

// RecommendedActions lists every recommended action.
var RecommendedActions = []RecommendedAction{RecommendReplay, RecommendManualCheck,
	RecommendEscalate, RecommendArchive}

// Valid reports whether a is one of RecommendedActions.
func (a RecommendedAction) Valid() bool { return slices.Contains(RecommendedActions, a) }
