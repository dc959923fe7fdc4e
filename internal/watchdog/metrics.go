package watchdog

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// RegisterMetrics exports the watchdog's counters (Stats) as observable
// instruments of m: whether this instance holds the leader lease, lease
// takeovers, breaker commands by trigger, the entries it rescued, flagged
// past their SLA, expired and purged, and each duty's runs and errors.
// Unregister the registration when the watchdog is gone.
func (w *Watchdog) RegisterMetrics(m metric.Meter) (metric.Registration, error) {
	leader, err1 := m.Int64ObservableGauge("baldur.watchdog.leader", metric.WithUnit("{state}"),
		metric.WithDescription("1 while this watchdog holds the leader lease."))
	acquired, err2 := m.Int64ObservableCounter("baldur.watchdog.lease.acquired", metric.WithUnit("{lease}"),
		metric.WithDescription("Leader lease takeovers by this watchdog."))
	commands, err3 := m.Int64ObservableCounter("baldur.watchdog.commands", metric.WithUnit("{command}"),
		metric.WithDescription("Breaker commands published (half_open, archive of idle breakers), by trigger."))
	entries, err4 := m.Int64ObservableCounter("baldur.watchdog.entries", metric.WithUnit("{entry}"),
		metric.WithDescription("Dead-letter entries acted on, by action (rescued, sla_breached, expired, purged)."))
	duties, err5 := m.Int64ObservableCounter("baldur.watchdog.duty.runs", metric.WithUnit("{run}"),
		metric.WithDescription("Duty runs, by duty and outcome (ok, error)."))
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return nil, err
	}
	action := func(v string) metric.ObserveOption {
		return metric.WithAttributes(attribute.String("baldur.watchdog.action", v))
	}
	rescued, breached, expired, purged := action("rescued"), action("sla_breached"), action("expired"), action("purged")
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := w.Stats()
		l := int64(0)
		if st.Leader {
			l = 1
		}
		o.ObserveInt64(leader, l)
		o.ObserveInt64(acquired, st.LeaderAcquired)
		for trigger, n := range st.Commands {
			o.ObserveInt64(commands, n, metric.WithAttributes(attribute.String("baldur.breaker.trigger", trigger)))
		}
		o.ObserveInt64(entries, st.Rescued, rescued)
		o.ObserveInt64(entries, st.SLABreached, breached)
		o.ObserveInt64(entries, st.Expired, expired)
		o.ObserveInt64(entries, st.Purged, purged)
		for name, d := range st.Duties {
			o.ObserveInt64(duties, d.Runs-d.Errors, metric.WithAttributes(attribute.String("baldur.watchdog.duty", name), attribute.String("outcome", "ok")))
			o.ObserveInt64(duties, d.Errors, metric.WithAttributes(attribute.String("baldur.watchdog.duty", name), attribute.String("outcome", "error")))
		}
		return nil
	}, leader, acquired, commands, entries, duties)
}
