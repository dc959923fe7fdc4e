package telemetry

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/baldurfleet/baldur/internal/buildinfo"
)

// MetricBuildInfo is the gauge every process that calls Setup exports, 1
// with the build's version, commit and Go version as attributes; on
// /metrics it is baldur_build_info{version,commit,go_version}.
const MetricBuildInfo = "baldur.build_info"

// Attribute keys of MetricBuildInfo.
const (
	AttrBuildVersion   = attribute.Key("version")
	AttrBuildCommit    = attribute.Key("commit")
	AttrBuildGoVersion = attribute.Key("go_version")
)

// registerBuildInfo registers MetricBuildInfo with info on mp.
func registerBuildInfo(mp metric.MeterProvider, info buildinfo.Info) error {
	attrs := metric.WithAttributes(
		AttrBuildVersion.String(info.Version),
		AttrBuildCommit.String(info.CommitLabel()),
		AttrBuildGoVersion.String(info.GoVersion),
	)
	_, err := mp.Meter(ScopeName+"/telemetry").Int64ObservableGauge(MetricBuildInfo,
		metric.WithDescription("Always 1: the version, commit and Go version of the running binary"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(1, attrs)
			return nil
		}))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrSetup, MetricBuildInfo, err)
	}
	return nil
}
