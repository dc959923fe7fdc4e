package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys LogHandler adds.
const (
	LogTraceID = "trace_id"
	LogSpanID  = "span_id"
)

// LogHandler wraps a slog.Handler and adds trace_id and span_id to every
// record whose context carries a valid span context (log with the
// *Context methods, e.g. InfoContext, to get them).
type LogHandler struct{ next slog.Handler }

// NewLogHandler returns next wrapped; a LogHandler is not wrapped twice.
func NewLogHandler(next slog.Handler) slog.Handler {
	if _, ok := next.(LogHandler); ok {
		return next
	}
	return LogHandler{next: next}
}

// Enabled reports whether the wrapped handler handles level.
func (h LogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle adds the trace attributes of ctx, then hands the record on.
func (h LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String(LogTraceID, sc.TraceID().String()), slog.String(LogSpanID, sc.SpanID().String()))
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns the handler with attrs on every record.
func (h LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return LogHandler{next: h.next.WithAttrs(attrs)}
}

// WithGroup returns the handler with later attributes in group name.
func (h LogHandler) WithGroup(name string) slog.Handler {
	return LogHandler{next: h.next.WithGroup(name)}
}
