package worker_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/telemetry"
	"github.com/baldurfleet/baldur/internal/worker"
)

func TestExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		code int
		line string
	}{
		{"clean stop", nil, worker.ExitOK, ""},
		{"help", worker.Usage(flag.ErrHelp), worker.ExitOK, ""},
		{"usage", worker.Usage(fmt.Errorf("%w: --tick is 0", process.ErrInvalidConfig)), worker.ExitUsage,
			"w: invalid configuration: --tick is 0\n"},
		{"no database", worker.RequireDatabase(process.Config{}), worker.ExitUsage,
			"w: invalid configuration: --database-url ($BALDUR_DATABASE_URL) is required\n"},
		{"telemetry", fmt.Errorf("%w: span exporter", telemetry.ErrSetup), worker.ExitUsage,
			"w: telemetry: setup failed: span exporter\n"},
		{"failed, joined on one line", errors.Join(errors.New("a"), errors.New("b")), worker.ExitFailed, "w: a; b\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			require.Equal(t, tt.code, worker.ExitCode(&out, "w", tt.err))
			require.Equal(t, tt.line, out.String())
		})
	}
	require.NoError(t, worker.RequireDatabase(process.Config{DatabaseURL: "postgres://x/y"}))
	require.NoError(t, worker.Usage(nil))
}
