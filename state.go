package baldur

import "github.com/baldurfleet/baldur/internal/domain"

// State is a breaker's state.
type State string

// Breaker states.
const (
	// StateClosed admits calls.
	StateClosed = State(domain.StateClosed)
	// StateOpen admits nothing until its recovery time.
	StateOpen = State(domain.StateOpen)
	// StateHalfOpen admits a few probe calls fleet-wide.
	StateHalfOpen = State(domain.StateHalfOpen)
)

// String returns the state's wire name.
func (s State) String() string { return string(s) }
