package fleetstate

import "errors"

// Sentinel errors of the fleet view.
var (
	// ErrNoBucket reports a KV bucket of the topology that does not exist
	// (yet): no breaker-worker has created the topology.
	ErrNoBucket = errors.New("fleetstate: bucket not found")
	// ErrWatchClosed reports a bucket watch that ended before its initial
	// values were delivered (the connection closed, the view was stopped).
	ErrWatchClosed = errors.New("fleetstate: watch closed before the initial values were loaded")
	// ErrBadState reports a value of baldur_breakers that cannot be read as a
	// breaker of its key; the view keeps the key's previous snapshot.
	ErrBadState = errors.New("fleetstate: undecodable breaker state")
	// ErrBadGovernance reports a value of baldur_governance that cannot be
	// decoded or breaks a governance rule; the view keeps the previous value.
	ErrBadGovernance = errors.New("fleetstate: invalid governance value")
	// ErrBadConfigKey reports a key of baldur_config that is neither
	// "_defaults" nor a valid service name.
	ErrBadConfigKey = errors.New("fleetstate: invalid config key")
)
