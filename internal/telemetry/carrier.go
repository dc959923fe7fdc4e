package telemetry

import (
	"context"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Header names of the W3C trace context, exactly as they travel.
const (
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// Propagator is the propagator of every Baldur message: W3C trace context
// and baggage. It is fixed rather than read from otel.GetTextMapPropagator
// so that a trace crosses the fleet even in a process that never called
// Setup (an SDK user without OpenTelemetry still forwards what it got).
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(
	propagation.TraceContext{}, propagation.Baggage{})

// HeaderCarrier adapts nats.Header to propagation.TextMapCarrier with exact
// header names. nats.Header.Set and Get canonicalise keys the way net/http
// does ("traceparent" would become "Traceparent"), which W3C-aware readers
// in other languages do not find; the carrier reads and writes the map
// directly instead.
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the first value of key, looked up exactly; when absent, the
// canonical form is tried too, for a sender that used nats.Header.Set.
func (c HeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	if v := nats.Header(c).Get(key); v != "" {
		return v
	}
	return ""
}

// Set replaces the values of key, kept exactly as given.
func (c HeaderCarrier) Set(key, value string) { c[key] = []string{value} }

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the trace context of ctx into msg's headers (allocating
// them if needed). Without a valid span context in ctx it writes nothing.
func Inject(ctx context.Context, msg *nats.Msg) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	Propagator.Inject(ctx, HeaderCarrier(msg.Header))
}

// Extract returns ctx with the remote trace context found in h, or ctx as
// is when h carries none.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return Propagator.Extract(ctx, HeaderCarrier(h))
}

// SpanContextOf returns the remote span context carried in h; it is not
// valid when h carries none. It is cheap for a header without traceparent,
// which is what a hot loop over many messages needs.
func SpanContextOf(h nats.Header) trace.SpanContext {
	if _, ok := h[HeaderTraceParent]; !ok {
		if _, ok := h["Traceparent"]; !ok {
			return trace.SpanContext{}
		}
	}
	return trace.SpanContextFromContext(Extract(context.Background(), h))
}

// TraceParent returns the W3C traceparent of the span in ctx, for storing
// with a record that outlives the message (a dead letter); "" without a
// valid span context.
func TraceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c[HeaderTraceParent]
}

// ContextWithTraceParent returns ctx with the remote span context of a
// stored traceparent (TraceParent); ctx as is when tp is empty or invalid.
func ContextWithTraceParent(ctx context.Context, tp string) context.Context {
	if tp == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{HeaderTraceParent: tp})
}
