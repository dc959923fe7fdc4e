package breaker

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/telemetry"
)

// tracer records the fold spans and the transition publishes.
var tracer = telemetry.Tracer("breaker")

// instruments are the worker's synchronous instruments, created once from
// the global meter provider (which forwards to the provider set later).
var instruments = func() (in struct {
	transitions metric.Int64Counter
	rejected    metric.Int64Counter
}) {
	m := telemetry.Meter("breaker")
	in.transitions, _ = m.Int64Counter("baldur.breaker.transitions", metric.WithUnit("{transition}"),
		metric.WithDescription("Breaker transitions published, by service, trigger and new state."))
	in.rejected, _ = m.Int64Counter("baldur.inputs.rejected", metric.WithUnit("{message}"),
		metric.WithDescription("Malformed or refused inputs published as rejected events, by kind."))
	return in
}()

// countTransition counts a published transition.
func countTransition(ctx context.Context, t domain.Transition) {
	instruments.transitions.Add(ctx, 1, metric.WithAttributes(telemetry.AttrService.String(t.Service),
		telemetry.AttrTrigger.String(string(t.Trigger)), telemetry.AttrState.String(string(t.To))))
}

// countRejected counts a published rejected event.
func countRejected(ctx context.Context, kind events.RejectedKind) {
	instruments.rejected.Add(ctx, 1, metric.WithAttributes(telemetry.AttrKind.String(string(kind))))
}

// startFold starts the span of a service's fold: a new trace per batch and
// service, linked to the span of every report it folds (a fold gathers
// reports from many traces, so they are links, not parents).
func startFold(ctx context.Context, g *group) (context.Context, trace.Span) {
	var links []trace.Link
	for i := range g.items {
		if sc := g.items[i].link; sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	return tracer.Start(ctx, "fold "+g.svc, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...),
		trace.WithAttributes(telemetry.AttrService.String(g.svc), attribute.Int("baldur.inputs", len(g.items)),
			telemetry.AttrMessagingSys.String("nats"), telemetry.AttrMessagingOp.String("process")))
}

// endSpan ends span, marking it failed with err.
func endSpan(span trace.Span, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// RegisterMetrics exports the worker's counters (Stats, and its permit
// server's) as observable instruments of m: reports folded, inputs by
// outcome, partitions owned, permits granted and denied, the live breakers
// against their cap and the inputs refused for it. Unregister the
// registration when the worker is gone.
func (w *Worker) RegisterMetrics(m metric.Meter) (metric.Registration, error) {
	reports, err1 := m.Int64ObservableCounter("baldur.breaker.reports.folded", metric.WithUnit("{report}"),
		metric.WithDescription("Outcome reports folded into breaker state."))
	commands, err2 := m.Int64ObservableCounter("baldur.breaker.commands", metric.WithUnit("{command}"),
		metric.WithDescription("Breaker commands, by outcome (applied, duplicate, noop, refused)."))
	writes, err3 := m.Int64ObservableCounter("baldur.breaker.writes", metric.WithUnit("{write}"),
		metric.WithDescription("Compare-and-set writes of breaker state."))
	parts, err4 := m.Int64ObservableGauge("baldur.breaker.partitions.owned", metric.WithUnit("{partition}"),
		metric.WithDescription("Partitions of BALDUR_INPUT whose lease this worker holds."))
	permits, err5 := m.Int64ObservableCounter("baldur.breaker.permits", metric.WithUnit("{request}"),
		metric.WithDescription("Half-open permit requests answered, by outcome (granted, denied, rejected, failed)."))
	live, err6 := m.Int64ObservableGauge("baldur.breaker.live", metric.WithUnit("{breaker}"),
		metric.WithDescription("Live breakers fleet-wide (keys of baldur_breakers), as this worker's view counts them."))
	limit, err7 := m.Int64ObservableGauge("baldur.breaker.max", metric.WithUnit("{breaker}"),
		metric.WithDescription("The cap on live breakers (--max-breakers)."))
	capped, err8 := m.Int64ObservableCounter("baldur.breaker.cap.rejected", metric.WithUnit("{message}"),
		metric.WithDescription("Inputs rejected because they would have created a breaker beyond the cap."))
	if err := errors.Join(err1, err2, err3, err4, err5, err6, err7, err8); err != nil {
		return nil, err
	}
	outcome := func(v string) metric.ObserveOption {
		return metric.WithAttributes(attribute.String("baldur.command.outcome", v))
	}
	applied, dup, noop, refused := outcome("applied"), outcome("duplicate"), outcome("noop"), outcome("refused")
	pOut := func(v string) metric.ObserveOption { return metric.WithAttributes(telemetry.AttrOutcome.String(v)) }
	granted, denied, prej, pfail := pOut("granted"), pOut("denied"), pOut("rejected"), pOut("failed")
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := w.Stats()
		o.ObserveInt64(reports, st.Reports)
		o.ObserveInt64(commands, st.Commands, applied)
		o.ObserveInt64(commands, st.Duplicates, dup)
		o.ObserveInt64(commands, st.NoOps, noop)
		o.ObserveInt64(commands, st.Refused, refused)
		o.ObserveInt64(writes, st.Writes)
		o.ObserveInt64(parts, st.Partitions)
		o.ObserveInt64(live, int64(w.cfg.Breakers.Len()))
		o.ObserveInt64(limit, int64(w.cfg.MaxBreakers))
		o.ObserveInt64(capped, st.BreakerCap)
		if w.permits != nil {
			ps := w.permits.Stats()
			o.ObserveInt64(permits, int64(ps.Granted), granted)
			o.ObserveInt64(permits, int64(ps.Requests-ps.Granted-ps.Rejected-ps.Failed), denied)
			o.ObserveInt64(permits, int64(ps.Rejected), prej)
			o.ObserveInt64(permits, int64(ps.Failed), pfail)
		}
		return nil
	}, reports, commands, writes, parts, permits, live, limit, capped)
}
