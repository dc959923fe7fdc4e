package devmode_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/devmode"
)

// TestHealthAndMetricsNextToTheDashboard checks that --http-addr serves
// /healthz, /readyz and /metrics next to the dashboard and the admin API.
func TestHealthAndMetricsNextToTheDashboard(t *testing.T) {
	t.Parallel()
	out := newOutput("")
	f, err := devmode.Start(t.Context(), testConfig(t, out))
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Stop(context.Background()) })
	base := strings.TrimSuffix(f.AdminURL(), "/")
	require.Contains(t, out.String(), base+"/metrics", "the banner names the endpoints")

	tests := []struct {
		path  string
		wants []string
	}{
		{"/healthz", []string{"ok"}},
		{"/readyz", []string{"ready"}},
		{"/metrics", []string{"baldur_breaker_partitions_owned", "baldur_dlq_ingested", "baldur_watchdog_"}},
		{"/api/health", nil},
		{"/", []string{"<html"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+tt.path, nil)
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			for _, want := range tt.wants {
				require.Contains(t, strings.ToLower(string(body)), strings.ToLower(want))
			}
		})
	}
}
