package telemetry

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// QueryTracer is a pgx.QueryTracer and pgx.BatchTracer that records a
// client span per query and per batch, following the OpenTelemetry database
// conventions: db.system.name postgresql, db.operation.name (the SQL verb),
// db.query.summary (the sqlc query name when the statement has one, e.g.
// "InsertEntries"), and db.query.text when IncludeText. Set it as
// pgx.ConnConfig.Tracer (pgxpool.Config.ConnConfig.Tracer).
//
// Queries run outside a span are traced as roots only when Roots is set:
// by default a query with no span in its context records nothing, so that
// background polling does not flood the traces.
type QueryTracer struct {
	tracer trace.Tracer
	// IncludeText records the statement as db.query.text (parameters are
	// never recorded).
	IncludeText bool
	// Roots records queries that have no parent span.
	Roots bool
}

var (
	_ pgx.QueryTracer = (*QueryTracer)(nil)
	_ pgx.BatchTracer = (*QueryTracer)(nil)
)

// NewQueryTracer returns a tracer recording through the global tracer
// provider, with the query text.
func NewQueryTracer() *QueryTracer {
	return &QueryTracer{tracer: otel.Tracer(ScopeName + "/pgx"), IncludeText: true}
}

var dbSystem = attribute.String("db.system.name", "postgresql")

func (t *QueryTracer) start(ctx context.Context, conn *pgx.Conn, name string, attrs ...attribute.KeyValue) context.Context {
	if !t.Roots && !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	attrs = append(attrs, dbSystem)
	if conn != nil {
		if cfg := conn.Config(); cfg != nil {
			attrs = append(attrs, attribute.String("db.namespace", cfg.Database),
				attribute.String("server.address", cfg.Host), attribute.Int("server.port", int(cfg.Port)))
		}
	}
	ctx, _ = t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx
}

func end(ctx context.Context, err error, attrs ...attribute.KeyValue) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attrs...)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// TraceQueryStart starts the span of one query.
func (t *QueryTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	op, summary := describe(data.SQL)
	attrs := []attribute.KeyValue{attribute.String("db.operation.name", op)}
	if summary != "" {
		attrs = append(attrs, attribute.String("db.query.summary", summary))
	} else {
		summary = op
	}
	if t.IncludeText {
		attrs = append(attrs, attribute.String("db.query.text", data.SQL))
	}
	return t.start(ctx, conn, summary, attrs...)
}

// TraceQueryEnd ends the span of one query.
func (t *QueryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	end(ctx, data.Err, attribute.Int64("db.response.returned_rows", data.CommandTag.RowsAffected()))
}

// TraceBatchStart starts the span of a batch.
func (t *QueryTracer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	n := 0
	if data.Batch != nil {
		n = data.Batch.Len()
	}
	return t.start(ctx, conn, "BATCH", attribute.String("db.operation.name", "BATCH"),
		attribute.Int("db.operation.batch.size", n))
}

// TraceBatchQuery records one query of a batch as an event of its span.
func (t *QueryTracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	op, summary := describe(data.SQL)
	attrs := []attribute.KeyValue{attribute.String("db.operation.name", op)}
	if summary != "" {
		attrs = append(attrs, attribute.String("db.query.summary", summary))
	}
	if data.Err != nil {
		attrs = append(attrs, attribute.String("error.type", data.Err.Error()))
	}
	span.AddEvent("query", trace.WithAttributes(attrs...))
}

// TraceBatchEnd ends the span of a batch.
func (t *QueryTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	end(ctx, data.Err)
}

// describe returns the SQL verb of a statement and the sqlc query name from
// its leading "-- name: Name :kind" comment, if any.
func describe(sql string) (op, summary string) {
	s := strings.TrimSpace(sql)
	for strings.HasPrefix(s, "--") {
		line, rest, _ := strings.Cut(s, "\n")
		if name, ok := strings.CutPrefix(strings.TrimSpace(strings.TrimPrefix(line, "--")), "name:"); ok {
			if f := strings.Fields(name); len(f) > 0 {
				summary = f[0]
			}
		}
		s = strings.TrimSpace(rest)
	}
	verb, _, _ := strings.Cut(s, " ")
	verb, _, _ = strings.Cut(verb, "\n")
	op = strings.ToUpper(strings.TrimSpace(verb))
	if op == "" {
		op = "SQL"
	}
	return op, summary
}
