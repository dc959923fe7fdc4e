package fleetstate

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/baldurfleet/baldur/internal/domain"
)

// Attribute keys of the view's metrics (the same as telemetry's, which this
// package cannot import without a cycle through the SDK).
const (
	attrService = attribute.Key("baldur.service")
	attrState   = attribute.Key("baldur.breaker.state")
)

var states = []domain.State{domain.StateClosed, domain.StateHalfOpen, domain.StateOpen}

// RegisterMetrics exports what the view holds as observable gauges of m:
// every breaker's state (baldur.breaker.state, 1 for the current state of
// each service and 0 for the others), the governance state (kill switch,
// emergency level, error budget remaining) and the fleet's aggregate
// failure rate. One process per fleet role is enough to register it (the
// breaker-workers do); every value is read at collection time.
func (v *View) RegisterMetrics(m metric.Meter) (metric.Registration, error) {
	state, err1 := m.Int64ObservableGauge("baldur.breaker.state", metric.WithUnit("{state}"),
		metric.WithDescription("1 for the current state of each service's breaker, 0 for the other states."))
	kill, err2 := m.Int64ObservableGauge("baldur.governance.kill_switch", metric.WithUnit("{state}"),
		metric.WithDescription("1 while the fleet's kill switch is on."))
	level, err3 := m.Int64ObservableGauge("baldur.governance.emergency_level", metric.WithUnit("{level}"),
		metric.WithDescription("The fleet's emergency level, 0 (normal) to 3."))
	budget, err4 := m.Float64ObservableGauge("baldur.governance.error_budget.remaining", metric.WithUnit("1"),
		metric.WithDescription("Fraction of the error budget left (0–1), while the error-budget gate is enabled."))
	rate, err5 := m.Float64ObservableGauge("baldur.fleet.failure_rate", metric.WithUnit("1"),
		metric.WithDescription("Fleet-wide failure fraction over every breaker's window (0–1)."))
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for s := range v.All() {
			for _, st := range states {
				val := int64(0)
				if s.State == st {
					val = 1
				}
				o.ObserveInt64(state, val, metric.WithAttributes(attrService.String(s.Service), attrState.String(string(st))))
			}
		}
		g := v.Governance()
		k := int64(0)
		if g.KillSwitch.Active {
			k = 1
		}
		o.ObserveInt64(kill, k)
		o.ObserveInt64(level, int64(g.Emergency.Level))
		if g.ErrorBudget.Enabled {
			o.ObserveFloat64(budget, g.ErrorBudget.Remaining)
		}
		o.ObserveFloat64(rate, v.AggregateFailureRate())
		return nil
	}, state, kill, level, budget, rate)
}
