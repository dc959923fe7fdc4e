package buildinfo

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadTakesVCSAndLinkerValues(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"},
	}}
	i := read(func() (*debug.BuildInfo, bool) { return bi, true })
	require.Equal(t, Info{Version: DevVersion, Commit: "abc123", Modified: true, GoVersion: "go1.99"}, i)
	require.Equal(t, "abc123-modified", i.CommitLabel())
	require.Equal(t, "dev (commit abc123, modified) go1.99", i.String())

	// A module build (go install …@v1.2.3) without VCS data.
	bi = &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v1.2.3"}}
	i = read(func() (*debug.BuildInfo, bool) { return bi, true })
	require.Equal(t, Info{Version: "v1.2.3", Commit: Unknown, GoVersion: "go1.99"}, i)
	require.Equal(t, Unknown, i.CommitLabel())

	// The linker's values win over the module version; VCS wins over the
	// linker's commit.
	version, commit = "1.4.0", "fromlinker"
	t.Cleanup(func() { version, commit = "", "" })
	i = read(func() (*debug.BuildInfo, bool) { return bi, true })
	require.Equal(t, "1.4.0", i.Version)
	require.Equal(t, "fromlinker", i.Commit)
	bi.Settings = []debug.BuildSetting{{Key: "vcs.revision", Value: "fromvcs"}}
	require.Equal(t, "fromvcs", read(func() (*debug.BuildInfo, bool) { return bi, true }).Commit)

	i = read(func() (*debug.BuildInfo, bool) { return nil, false })
	require.Equal(t, "1.4.0", i.Version)
	require.NotEmpty(t, i.GoVersion)
}

func TestPrint(t *testing.T) {
	var out bytes.Buffer
	Print(&out, "watchdog")
	line := out.String()
	require.True(t, strings.HasPrefix(line, "watchdog "+Get().Version+" (commit "), line)
	require.True(t, strings.HasSuffix(line, Get().GoVersion+"\n"), line)
}

func TestRequested(t *testing.T) {
	for args, want := range map[string]bool{
		"--version": true, "-version": true, "--nats-url x --version": true, "--version=true": true,
		"": false, "-- --version": false, "--versions": false, "--version=false": false,
	} {
		require.Equal(t, want, Requested(strings.Fields(args)), args)
	}
}
