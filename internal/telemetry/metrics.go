package telemetry

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope prefix of Baldur's tracers and
// meters; components append their package ("/breaker", "/replay", ...).
const ScopeName = "github.com/baldurfleet/baldur"

// Attribute keys of Baldur's spans and metrics.
const (
	AttrService       = attribute.Key("baldur.service")
	AttrState         = attribute.Key("baldur.breaker.state")
	AttrTrigger       = attribute.Key("baldur.breaker.trigger")
	AttrStatus        = attribute.Key("baldur.dlq.status")
	AttrResult        = attribute.Key("baldur.replay.result")
	AttrKind          = attribute.Key("baldur.rejected.kind")
	AttrOutcome       = attribute.Key("baldur.permit.outcome")
	AttrDLQID         = attribute.Key("baldur.dlq.id")
	AttrAttempt       = attribute.Key("baldur.replay.attempt")
	AttrReports       = attribute.Key("baldur.reports")
	AttrGeneration    = attribute.Key("baldur.breaker.generation")
	AttrMessagingSys  = attribute.Key("messaging.system")
	AttrMessagingDest = attribute.Key("messaging.destination.name")
	AttrMessagingOp   = attribute.Key("messaging.operation.type")
	AttrMessagingID   = attribute.Key("messaging.message.id")
)

// Tracer returns the tracer of component (a scope under ScopeName) from the
// global provider.
func Tracer(component string) trace.Tracer { return otel.Tracer(ScopeName + "/" + component) }

// Meter returns the meter of component (a scope under ScopeName) from the
// global provider.
func Meter(component string) metric.Meter { return otel.Meter(ScopeName + "/" + component) }

// Messaging returns the messaging attributes of a NATS message on subject:
// messaging.system nats, the destination and the operation type (send,
// receive, process).
func Messaging(subject, op string) []attribute.KeyValue {
	return []attribute.KeyValue{AttrMessagingSys.String("nats"), AttrMessagingDest.String(subject), AttrMessagingOp.String(op)}
}
