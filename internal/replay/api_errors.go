package replay

import "errors"

// Errors of the DLQ endpoints. Each is answered with its micro error code:
// ErrBadRequest 400, ErrEntryConflict 409, ErrReplayUnavailable 503; the
// store's ErrNotFound is 404, its ErrInvalidTransition 409 and its
// ErrInvalidArgument 400; anything else 500.
var (
	// ErrBadRequest reports a request body the endpoint refuses: invalid
	// JSON, an unknown or mis-cased field, a missing actor or reason, a
	// malformed id, a filter value out of range. The message names the field.
	ErrBadRequest = errors.New("bad request")
	// ErrEntryConflict reports an entry that cannot take the action in its
	// current status (e.g. replaying an entry that was already replayed).
	ErrEntryConflict = errors.New("conflict")
	// ErrReplayUnavailable reports a replay request to an API that was built
	// without a Replayer.
	ErrReplayUnavailable = errors.New("replay unavailable on this worker")
	// ErrAPIRunning reports Start on an API that is already serving.
	ErrAPIRunning = errors.New("replay: DLQ API already running")
	// ErrAPINotStarted reports Stop on an API that is not serving.
	ErrAPINotStarted = errors.New("replay: DLQ API not started")
)
