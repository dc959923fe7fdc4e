package breaker

import "github.com/baldurfleet/baldur/internal/domain"

// ConfigSource resolves a service's breaker config: built-in defaults, then
// _defaults, then the service's own object in baldur_config (the last valid
// value of each). *fleetstate.View satisfies it.
type ConfigSource interface {
	Config(svc string) domain.Config
}

// GovernanceSource returns the fleet's current governance snapshot (the keys
// of baldur_governance). *fleetstate.View satisfies it.
type GovernanceSource interface {
	Governance() domain.Governance
}

// BreakerCounter counts the fleet's live breakers: the keys of
// baldur_breakers as a watch of the bucket sees them. *fleetstate.View
// satisfies it.
type BreakerCounter interface {
	Len() int
}
