package fleetstate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/topology"
)

// applyGovernance applies one entry of baldur_governance: kill_switch,
// emergency_level or error_budget. A deleted key is its zero value (kill
// switch off, level normal, no error-budget gate). A value that cannot be
// decoded or breaks a rule is reported and ignored. Other keys (the
// watchdog's aggregate) are not governance inputs and are skipped.
func (v *View) applyGovernance(e jetstream.KeyValueEntry) {
	key := e.Key()
	deleted := e.Operation() == jetstream.KeyValueDelete || e.Operation() == jetstream.KeyValuePurge
	g := *v.gov.Load()
	var dst any
	switch events.GovernanceKey(key) {
	case events.GovernanceKillSwitch:
		g.KillSwitch = domain.KillSwitchState{}
		dst = &g.KillSwitch
	case events.GovernanceEmergencyLevel:
		g.Emergency = domain.EmergencyState{}
		dst = &g.Emergency
	case events.GovernanceErrorBudget:
		g.ErrorBudget = domain.ErrorBudget{}
		dst = &g.ErrorBudget
	default:
		v.opts.log.Debug("fleetstate: governance key skipped", slog.String("key", key))
		return
	}
	if !deleted {
		dec := json.NewDecoder(bytes.NewReader(e.Value()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(dst); err != nil {
			v.reject(events.RejectedGovernance, topology.BucketGovernance, key, e.Value(),
				fmt.Errorf("%w: %s: %w", ErrBadGovernance, key, err))
			return
		}
		if err := g.Validate(); err != nil {
			v.reject(events.RejectedGovernance, topology.BucketGovernance, key, e.Value(),
				fmt.Errorf("%w: %s: %w", ErrBadGovernance, key, err))
			return
		}
	}
	v.gov.Store(&g)
}
