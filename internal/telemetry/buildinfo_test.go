package telemetry_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/buildinfo"
	"github.com/baldurfleet/baldur/internal/telemetry"
)

func TestMetricsServeBuildInfo(t *testing.T) {
	t.Parallel()
	provider, err := telemetry.Setup(t.Context(), telemetry.Config{ServiceName: "buildinfo-test", NodeID: "n1", Getenv: func(string) string { return "" }, NoGlobal: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = provider.Shutdown(t.Context()) })
	srv := httptest.NewServer(telemetry.Handler(provider.Metrics()))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)

	info := buildinfo.Get()
	line := regexp.MustCompile(`(?m)^baldur_build_info\{([^}]*)\} 1$`).FindStringSubmatch(string(body))
	require.NotNil(t, line, "no baldur_build_info 1 in:\n%s", body)
	for _, want := range []string{
		`version="` + regexp.QuoteMeta(info.Version) + `"`,
		`commit="` + regexp.QuoteMeta(info.CommitLabel()) + `"`,
		`go_version="` + regexp.QuoteMeta(info.GoVersion) + `"`,
	} {
		require.Regexp(t, want, line[1])
	}
	require.Regexp(t, `(?m)^# TYPE baldur_build_info gauge$`, string(body))
}
