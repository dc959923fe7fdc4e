package baldur

import (
	"context"

	"go.opentelemetry.io/otel/metric"

	"github.com/baldurfleet/baldur/internal/telemetry"
)

// registerMetrics exports the client's counters (Stats) as observable
// instruments of the global meter provider; the registration ends with the
// client. See docs/observability.md for the names.
func (c *Client) registerMetrics() (metric.Registration, error) {
	m := telemetry.Meter("sdk")
	reports, err1 := m.Int64ObservableCounter("baldur.sdk.reports",
		metric.WithUnit("{report}"), metric.WithDescription("Outcome reports the stream acknowledged."))
	dropped, err2 := m.Int64ObservableCounter("baldur.sdk.reports.dropped",
		metric.WithUnit("{report}"), metric.WithDescription("Outcome reports dropped because the retry buffer was full."))
	depth, err3 := m.Int64ObservableGauge("baldur.sdk.buffer.depth",
		metric.WithUnit("{report}"), metric.WithDescription("Outcome reports waiting in the retry buffer."))
	unreported, err4 := m.Int64ObservableGauge("baldur.sdk.calls.unreported",
		metric.WithUnit("{call}"), metric.WithDescription("Calls recorded and not yet in a report."))
	permits, err5 := m.Int64ObservableCounter("baldur.sdk.permit.requests",
		metric.WithUnit("{request}"), metric.WithDescription("Half-open permits asked for, by outcome (granted, denied)."))
	if err := firstErr(err1, err2, err3, err4, err5); err != nil {
		return nil, err
	}
	granted := metric.WithAttributes(telemetry.AttrOutcome.String("granted"))
	denied := metric.WithAttributes(telemetry.AttrOutcome.String("denied"))
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := c.Stats()
		o.ObserveInt64(reports, int64(st.Reports))
		o.ObserveInt64(dropped, int64(st.Dropped))
		o.ObserveInt64(depth, int64(st.Buffered))
		o.ObserveInt64(unreported, st.Unreported)
		o.ObserveInt64(permits, int64(st.PermitsGranted), granted)
		o.ObserveInt64(permits, int64(st.PermitRequests-st.PermitsGranted), denied)
		return nil
	}, reports, dropped, depth, unreported, permits)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
