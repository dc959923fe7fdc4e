package telemetry_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/baldurfleet/baldur/internal/telemetry"
	"github.com/baldurfleet/baldur/internal/testenv"
)

// spans and provider are this test binary's global telemetry: every
// component records through the global providers, so they are installed
// once, here, and tests tell their spans and series apart by service name.
var (
	spans    = tracetest.NewInMemoryExporter()
	provider *telemetry.Provider
)

func TestMain(m *testing.M) {
	var err error
	provider, err = telemetry.Setup(context.Background(), telemetry.Config{
		ServiceName: "telemetry-test", NodeID: "t1", SpanExporter: spans,
		Getenv: func(string) string { return "" },
	})
	if err != nil {
		panic(err)
	}
	testenv.Main(m) // exits
}
