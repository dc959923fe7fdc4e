package replay

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/telemetry"
)

// tracer records ingest and replay-delivery spans.
var tracer = telemetry.Tracer("replay")

// instruments are the replay-worker's synchronous instruments, created once
// from the global meter provider (which forwards to the provider set later).
var instruments = func() (in struct {
	attempts metric.Int64Counter
	duration metric.Float64Histogram
	rejected metric.Int64Counter
}) {
	m := telemetry.Meter("replay")
	in.attempts, _ = m.Int64Counter("baldur.replay.attempts", metric.WithUnit("{attempt}"),
		metric.WithDescription("Replay deliveries, by service and result (ok, failed, not_retryable, no_responders, error)."))
	in.duration, _ = m.Float64Histogram("baldur.replay.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from a replay request to its answer."),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	in.rejected, _ = m.Int64Counter("baldur.inputs.rejected", metric.WithUnit("{message}"),
		metric.WithDescription("Malformed or refused inputs published as rejected events, by kind."))
	return in
}()

// countRejected counts a published rejected event.
func countRejected(ctx context.Context, kind events.RejectedKind) {
	instruments.rejected.Add(ctx, 1, metric.WithAttributes(telemetry.AttrKind.String(string(kind))))
}

// recordDelivery counts a delivery and its latency.
func recordDelivery(ctx context.Context, svc string, result string, took time.Duration) {
	attrs := metric.WithAttributes(telemetry.AttrService.String(svc), telemetry.AttrResult.String(result))
	instruments.attempts.Add(ctx, 1, attrs)
	instruments.duration.Record(ctx, took.Seconds(), attrs)
}

// TraceStore is the optional part of an Inserter that keeps the trace
// context of the ingested entries (store.Store has it).
type TraceStore interface {
	SetTraceContexts(ctx context.Context, byID map[string]string) error
}

// startIngestSpan starts the span of one dead letter's ingest, a child of
// the dead letter's publish in the failed call's trace; nil when the
// message carries no trace context (no span is made for untraced input).
func startIngestSpan(subject string, h nats.Header, svc, id string) trace.Span {
	sc := telemetry.SpanContextOf(h)
	if !sc.IsValid() {
		return nil
	}
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), sc)
	_, span := tracer.Start(ctx, "process "+subject, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(telemetry.Messaging(subject, "process")...),
		trace.WithAttributes(telemetry.AttrService.String(svc), telemetry.AttrDLQID.String(id)))
	return span
}

// traceParents returns the traceparent of each span by entry id, for the
// entries inserted.
func traceParents(b *ingestBatch, inserted []string) map[string]string {
	if len(b.spans) == 0 {
		return nil
	}
	byID := make(map[string]string)
	for i, s := range b.spans {
		if s == nil {
			continue
		}
		byID[b.entries[i].ID] = telemetry.TraceParent(trace.ContextWithSpan(context.Background(), s))
	}
	out := make(map[string]string, len(inserted))
	for _, id := range inserted {
		if tp, ok := byID[id]; ok {
			out[id] = tp
		}
	}
	return out
}

// endSpans ends the ingest spans of b, failed with err if not nil.
func endSpans(spans []trace.Span, err error) {
	for _, s := range spans {
		if s == nil {
			continue
		}
		if err != nil {
			s.RecordError(err)
			s.SetStatus(codes.Error, err.Error())
		}
		s.End()
	}
}

// traceContexts reads the stored trace contexts of a claimed batch; a
// failure costs the traces their continuation, not the replay.
func (e *Engine) traceContexts(ctx context.Context, batch []domain.DLQEntry) map[string]string {
	ids := make([]string, len(batch))
	for i, en := range batch {
		ids[i] = en.ID
	}
	tcs, err := e.store.TraceContexts(ctx, ids)
	if err != nil && !errors.Is(err, context.Canceled) {
		e.log.LogAttrs(ctx, slog.LevelDebug, "trace contexts not read", slog.Any("error", err))
	}
	return tcs
}

// startDeliverySpan starts the client span of one replay request, in the
// trace the entry was ingested in (tc), or a new one.
func startDeliverySpan(ctx context.Context, subject string, en domain.DLQEntry, tc string) (context.Context, trace.Span) {
	return tracer.Start(telemetry.ContextWithTraceParent(ctx, tc), "send "+subject, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(telemetry.Messaging(subject, "send")...),
		trace.WithAttributes(telemetry.AttrService.String(en.Service), telemetry.AttrDLQID.String(en.ID),
			telemetry.AttrAttempt.Int(en.RetryCount+1)))
}

// RegisterMetrics exports the worker's gauges and counters as observable
// instruments of m: DLQ depth by service and status (one query per
// collection, bounded by telemetry.CheckTimeout), ingest counters, and the
// replay leases this worker holds. Unregister the registration when the
// worker is gone.
func (w *Worker) RegisterMetrics(m metric.Meter) (metric.Registration, error) {
	depth, err1 := m.Int64ObservableGauge("baldur.dlq.entries", metric.WithUnit("{entry}"),
		metric.WithDescription("Dead-letter entries in PostgreSQL, by service and status."))
	ingested, err2 := m.Int64ObservableCounter("baldur.dlq.ingested", metric.WithUnit("{message}"),
		metric.WithDescription("Dead letters fetched by ingest, by outcome (inserted, duplicate, rejected, backlog_full)."))
	leases, err3 := m.Int64ObservableGauge("baldur.replay.leases.held", metric.WithUnit("{lease}"),
		metric.WithDescription("Replay leases this worker holds: services it drains now."))
	paused, err4 := m.Int64ObservableGauge("baldur.dlq.ingest.paused", metric.WithUnit("{state}"),
		metric.WithDescription("1 while ingest is paused because PostgreSQL fails."))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	outcome := func(v string) metric.ObserveOption {
		return metric.WithAttributes(telemetry.AttrResult.String(v))
	}
	ins, dup, rej, full := outcome("inserted"), outcome("duplicate"), outcome("rejected"), outcome(CodeBacklogFull)
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		if in := w.Ingest(); in != nil {
			st := in.Stats()
			o.ObserveInt64(ingested, int64(st.Inserted), ins)
			o.ObserveInt64(ingested, int64(st.Duplicates), dup)
			o.ObserveInt64(ingested, int64(st.Rejected), rej)
			o.ObserveInt64(ingested, int64(st.BacklogFull), full)
			p := int64(0)
			if st.Paused {
				p = 1
			}
			o.ObserveInt64(paused, p)
		}
		if e := w.Engine(); e != nil {
			e.mu.Lock()
			n := len(e.draining)
			e.mu.Unlock()
			o.ObserveInt64(leases, int64(n))
		}
		if w.deps.Store != nil {
			cctx, cancel := context.WithTimeout(ctx, telemetry.CheckTimeout)
			defer cancel()
			counts, err := w.deps.Store.Counts(cctx)
			if err != nil {
				return err
			}
			for svc, byStatus := range counts {
				for status, n := range byStatus {
					o.ObserveInt64(depth, n, metric.WithAttributes(telemetry.AttrService.String(svc), telemetry.AttrStatus.String(string(status))))
				}
			}
		}
		return nil
	}, depth, ingested, leases, paused)
}
