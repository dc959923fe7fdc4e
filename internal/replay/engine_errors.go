package replay

import "errors"

// Errors of the replay engine. They are wrapped with %w and a message that
// names the service and what went wrong.
var (
	// ErrInvalidEngineConfig reports an EngineConfig or ReplayOptions value
	// out of range.
	ErrInvalidEngineConfig = errors.New("replay: invalid engine config")
	// ErrDeliveryTransport reports a replay delivery that failed for a reason
	// that is not the service's answer (the connection closed, the message
	// could not be built): no attempt is spent and the drain stops.
	ErrDeliveryTransport = errors.New("replay: delivery transport failed")
	// ErrEventPublish reports a replay event that could not be published.
	ErrEventPublish = errors.New("replay: event not published")
)
