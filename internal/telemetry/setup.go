package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/baldurfleet/baldur/internal/buildinfo"
)

// Environment variables Setup reads besides those the OpenTelemetry
// exporters read themselves.
const (
	EnvTracesExporter      = "OTEL_TRACES_EXPORTER"
	EnvMetricsExporter     = "OTEL_METRICS_EXPORTER"
	EnvOTLPEndpoint        = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvOTLPTracesEndpoint  = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvOTLPMetricsEndpoint = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
)

// Config configures Setup.
type Config struct {
	// ServiceName is the resource's service.name (the binary's name);
	// OTEL_SERVICE_NAME overrides it.
	ServiceName string
	// NodeID is the process's node id, a resource attribute
	// (baldur.node.id) and service.instance.id.
	NodeID string
	// Getenv reads the environment; nil is os.Getenv.
	Getenv func(string) string
	// SpanExporter, when set, replaces the exporter chosen from the
	// environment (tests use tracetest.InMemoryExporter). It is exported
	// synchronously.
	SpanExporter sdktrace.SpanExporter
	// NoGlobal leaves the global providers alone (tests that run in
	// parallel build their own).
	NoGlobal bool
}

// Provider holds the OpenTelemetry providers Setup built.
type Provider struct {
	// Tracer is the tracer provider: spans are exported per the
	// environment, or dropped when no exporter is configured (they still
	// carry trace ids into logs and messages).
	Tracer *sdktrace.TracerProvider
	// Meter is the meter provider; its Prometheus reader backs Metrics.
	Meter *sdkmetric.MeterProvider
	// Registry is the Prometheus registry Metrics serves.
	Registry *prometheus.Registry

	shutdown []func(context.Context) error
}

// Setup builds the tracer and meter providers from cfg and the standard
// OTEL_* environment and, unless cfg.NoGlobal, installs them and Propagator
// as the global ones.
//
// Traces go to the exporter named by OTEL_TRACES_EXPORTER (otlp, console,
// none) with the OTLP protocol of OTEL_EXPORTER_OTLP_PROTOCOL; when neither
// it nor an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, nothing is exported. Metrics
// are always readable at Metrics (Prometheus), and are also pushed by the
// reader OTEL_METRICS_EXPORTER names, when it is set (or an OTLP metrics
// endpoint is). Sampling follows OTEL_TRACES_SAMPLER (default: parent-based,
// always on). Every provider exports MetricBuildInfo.
func Setup(ctx context.Context, cfg Config) (*Provider, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(cfg.ServiceName),
		semconv.ServiceInstanceID(cfg.NodeID),
		semconv.ServiceNamespace("baldur"),
	))
	if err == nil {
		// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
		res, err = resource.Merge(res, resource.Environment())
	}
	if err != nil {
		return nil, fmt.Errorf("%w: resource: %w", ErrSetup, err)
	}
	p := &Provider{Registry: prometheus.NewRegistry()}

	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	switch {
	case cfg.SpanExporter != nil:
		topts = append(topts, sdktrace.WithSyncer(cfg.SpanExporter))
	case getenv(EnvTracesExporter) != "" || getenv(EnvOTLPEndpoint) != "" || getenv(EnvOTLPTracesEndpoint) != "":
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: span exporter (%s=%q): %w", ErrSetup, EnvTracesExporter, getenv(EnvTracesExporter), err)
		}
		if !autoexport.IsNoneSpanExporter(exp) {
			topts = append(topts, sdktrace.WithBatcher(exp))
		}
	}
	p.Tracer = sdktrace.NewTracerProvider(topts...)
	p.shutdown = append(p.shutdown, p.Tracer.Shutdown)

	prom, err := otelprom.New(otelprom.WithRegisterer(p.Registry))
	if err != nil {
		_ = p.Shutdown(ctx)
		return nil, fmt.Errorf("%w: Prometheus exporter: %w", ErrSetup, err)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
	if getenv(EnvMetricsExporter) != "" || getenv(EnvOTLPMetricsEndpoint) != "" {
		r, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			_ = p.Shutdown(ctx)
			return nil, fmt.Errorf("%w: metric reader (%s=%q): %w", ErrSetup, EnvMetricsExporter, getenv(EnvMetricsExporter), err)
		}
		if !autoexport.IsNoneMetricReader(r) {
			mopts = append(mopts, sdkmetric.WithReader(r))
		}
	}
	p.Meter = sdkmetric.NewMeterProvider(mopts...)
	p.shutdown = append(p.shutdown, p.Meter.Shutdown)
	if err := registerBuildInfo(p.Meter, buildinfo.Get()); err != nil {
		_ = p.Shutdown(ctx)
		return nil, err
	}

	if !cfg.NoGlobal {
		otel.SetTracerProvider(p.Tracer)
		otel.SetMeterProvider(p.Meter)
		otel.SetTextMapPropagator(Propagator)
	}
	return p, nil
}

// Metrics returns the handler of /metrics: the Prometheus text (or
// OpenMetrics) exposition of the meter provider.
func (p *Provider) Metrics() http.Handler {
	return promhttp.HandlerFor(p.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// TracerProvider returns the tracer provider as the API interface.
func (p *Provider) TracerProvider() trace.TracerProvider { return p.Tracer }

// Shutdown flushes and stops the providers; call it once at exit.
func (p *Provider) Shutdown(ctx context.Context) error {
	var errs []error
	for i := len(p.shutdown) - 1; i >= 0; i-- {
		errs = append(errs, p.shutdown[i](ctx))
	}
	return errors.Join(errs...)
}
