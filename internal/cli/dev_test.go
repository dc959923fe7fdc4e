package cli_test

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/cli"
)

func TestDevTakenPortIsOneLine(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	var out, errOut bytes.Buffer
	code := cli.RunEnv(context.Background(), []string{"dev", "--demo", "--ephemeral", "--nats-port", port,
		"--http-addr", "127.0.0.1:0"}, &out, &errOut, func(string) string { return "" })
	require.Equal(t, cli.ExitFailed, code, "stderr: %s", errOut.String())
	msg := strings.TrimSpace(errOut.String())
	require.NotContains(t, msg, "\n", "one line")
	require.Contains(t, msg, "NATS port "+port)
	require.Contains(t, msg, "--nats-port")
}

func TestDevHelp(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := cli.RunEnv(context.Background(), []string{"dev", "--help"}, &out, &errOut, func(string) string { return "" })
	require.Equal(t, cli.ExitOK, code)
	for _, flag := range []string{"--demo", "--ephemeral", "--data-dir", "--nats-port", "--http-addr", "--admin-token", "--database-url"} {
		require.Contains(t, out.String(), flag)
	}
}

// TestTopHelpDescribesEveryCommand: each command of `baldur --help` has a
// description.
func TestTopHelpDescribesEveryCommand(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := cli.RunEnv(context.Background(), []string{"--help"}, &out, &errOut, func(string) string { return "" })
	require.Equal(t, cli.ExitOK, code)
	_, list, ok := strings.Cut(out.String(), "\n\n  ")
	require.True(t, ok, out.String())
	list, _, _ = strings.Cut(list, "\n\n")
	lines := strings.Split("  "+list, "\n")
	require.GreaterOrEqual(t, len(lines), 7, out.String())
	for _, line := range lines {
		fields := strings.Fields(line)
		require.GreaterOrEqual(t, len(fields), 3, "command %q has no description", line)
	}
	require.Contains(t, out.String(), "dev  ")
}
