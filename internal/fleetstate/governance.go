package fleetstate

import (
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

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
	var value []byte
	if e.Operation() == jetstream.KeyValuePut {
		value = e.Value()
	}
	g, known, err := v.gov.Load().WithKey(key, value)
	switch {
	case !known:
		v.opts.log.Debug("fleetstate: governance key skipped", slog.String("key", key))
		return
	case err != nil:
		v.reject(events.RejectedGovernance, topology.BucketGovernance, key, e.Value(), fmt.Errorf("%w: %w", ErrBadGovernance, err))
		return
	}
	v.gov.Store(&g)
}
