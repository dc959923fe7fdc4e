package deploytest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/buildinfo"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// runTimeout bounds one run of a built binary.
const runTimeout = time.Minute

// result is how a run of a built binary ended.
type result struct {
	code           int
	stdout, stderr string
}

// runBinary runs a binary of binDir with args and exactly the environment
// env (none of the test's BALDUR_* leaks in) and waits for it to exit.
func runBinary(t *testing.T, bin string, args, env []string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir(t), bin), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append([]string{}, env...)
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		require.NoError(t, err, "%s %v", bin, args)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// versionLine matches a --version line of binary name: "<name> <version>
// (commit <commit>[, modified]) go…".
func versionLine(name string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(name) + ` ` + regexp.QuoteMeta(testVersion) +
		` \(commit (?:[0-9a-f]+|` + buildinfo.Unknown + `)(?:-modified)?(, modified)?\) go1\.[0-9.]+\S*\n$`)
}

func TestEveryBinaryPrintsItsVersion(t *testing.T) {
	t.Parallel()
	for _, name := range cmdDirs(t) {
		argvs := [][]string{{"--version"}, {"-version"}}
		if name == "baldur" {
			argvs = append(argvs, []string{"version"})
		} else {
			// --version answers whatever else is wrong with the line.
			argvs = append(argvs, []string{"--partitions", "0", "--colour", "red", "--version"})
		}
		for _, args := range argvs {
			r := runBinary(t, name, args, nil)
			require.Equal(t, 0, r.code, "%s %v: %s", name, args, r.stderr)
			require.Regexp(t, versionLine(name), r.stdout, "%s %v", name, args)
			require.Empty(t, r.stderr, "%s %v", name, args)
		}
	}
	r := runBinary(t, "baldur", []string{"version", "--json"}, nil)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, `"version":"`+testVersion+`"`)
	require.Contains(t, r.stdout, `"go_version":"go1.`)
}

func TestBuildsStampTheVersion(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(path("deploy", "Dockerfile"))
	require.NoError(t, err)
	docker := strings.ReplaceAll(string(raw), "\\\n", " ")
	require.Regexp(t, `(?m)^ARG VERSION\b`, docker)
	require.Contains(t, docker, "-X "+buildinfo.VersionVar+"=${VERSION}", "the Dockerfile's go build stamps ARG VERSION")
	require.Contains(t, docker, "-X "+buildinfo.CommitVar+"=${COMMIT}", "the Dockerfile's go build stamps ARG COMMIT")

	raw, err = os.ReadFile(path("Makefile"))
	require.NoError(t, err)
	mk := string(raw)
	require.Regexp(t, `(?m)^LDFLAGS\s*:?=\s*-X `+regexp.QuoteMeta(buildinfo.VersionVar)+`=\$\(VERSION\)$`, mk)
	builds := regexp.MustCompile(`(?m)^\t.*\$\(GO\) build .*$`).FindAllString(mk, -1)
	require.NotEmpty(t, builds)
	for _, b := range builds {
		require.Contains(t, b, `-ldflags "$(LDFLAGS)"`, "Makefile: %s", strings.TrimSpace(b))
	}
	require.Regexp(t, `(?m)^build:`, mk, "a build target")
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// startWorker starts the breaker-worker binary against natsURL, serving
// --http-addr on a free port, waits until /readyz answers 200 and returns
// the process, its address, its stderr and a channel closed when it exited.
func startWorker(t *testing.T, natsURL string) (*exec.Cmd, string, *testenv.Buffer, <-chan struct{}) {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(filepath.Join(binDir(t), "breaker-worker"), "--http-addr", addr, "--partitions", "1", "--node-id", "bw-exit")
	cmd.Env = []string{"BALDUR_NATS_URL=" + natsURL}
	stderr := &testenv.Buffer{}
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	ready := func() bool {
		select {
		case <-exited:
			require.Failf(t, "breaker-worker exited", "%s", stderr.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	require.Eventually(t, ready, waitFor, 20*time.Millisecond, "breaker-worker never ready: %s", stderr)
	return cmd, addr, stderr, exited
}

func TestWorkerMetricsCarryBuildInfo(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	cmd, addr, stderr, exited := startWorker(t, env.URL)
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	line := regexp.MustCompile(`(?m)^baldur_build_info\{([^}]*)\} 1$`).FindStringSubmatch(string(body))
	require.NotNil(t, line, "no baldur_build_info 1 on /metrics:\n%s", body)
	require.Contains(t, line[1], `version="`+testVersion+`"`)
	require.Regexp(t, `commit="[^"]+"`, line[1])
	require.Regexp(t, `go_version="go1\.[^"]+"`, line[1])

	// A clean stop on SIGTERM exits 0 (operations.md, "Exit codes").
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-exited:
	case <-time.After(runTimeout):
		t.Fatal("breaker-worker did not stop on SIGTERM")
	}
	require.Equal(t, 0, cmd.ProcessState.ExitCode(), "exit code after SIGTERM: %s", stderr)
}

// documentedCodes returns the exit codes of the table under heading in a
// doc: the first cell of each row.
func documentedCodes(t *testing.T, doc, heading string) []int {
	t.Helper()
	text := readDoc(t, doc)
	_, section, ok := strings.Cut(text, "\n"+heading+"\n")
	require.True(t, ok, "docs/%s has no %q", doc, heading)
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	var codes []int
	for _, m := range regexp.MustCompile(`(?m)^\| ([0-9]+) \|`).FindAllStringSubmatch(section, -1) {
		n, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		codes = append(codes, n)
	}
	require.NotEmpty(t, codes, "docs/%s %q has no table of codes", doc, heading)
	return codes
}

// exitCase is one command line of a binary and the code it must exit with.
type exitCase struct {
	bin  string
	why  string
	args []string
	env  []string
	want int
	// stderr is a piece of the one line a failure prints.
	stderr string
}

func TestExitCodesAsDocumented(t *testing.T) {
	t.Parallel()
	// A fleet's NATS (topology created, as by any worker) and a NATS no
	// worker ever ran on.
	fleet := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	_, err := topology.Ensure(ctx, fleet.JS, topology.Config{Partitions: 1, Storage: jetstream.MemoryStorage})
	require.NoError(t, err)
	bare := testenv.NATS(t)
	dead := "nats://127.0.0.1:1"
	deadDB := "postgres://baldur@127.0.0.1:1/baldur?connect_timeout=2"
	key := "BALDUR_AUDIT_KEY=" + strings.Repeat("k", 32)
	cli := func(url string) []string { return []string{"BALDUR_NATS_URL=" + url} }

	cases := []exitCase{
		// baldur (docs/cli.md, "Exit codes")
		{bin: "baldur", why: "help", args: []string{"help"}, want: 0},
		{bin: "baldur", why: "--version", args: []string{"--version"}, want: 0},
		{bin: "baldur", why: "a read that succeeded", args: []string{"breaker", "list"}, env: cli(fleet.URL), want: 0},
		{bin: "baldur", why: "a config read", args: []string{"config", "get", "_defaults", "--json"}, env: cli(fleet.URL), want: 0},
		{bin: "baldur", why: "not found", args: []string{"breaker", "get", "nosuch"}, env: cli(fleet.URL), want: 1, stderr: "nosuch"},
		{bin: "baldur", why: "nothing to delete", args: []string{"config", "delete", "payments"}, env: cli(fleet.URL), want: 1, stderr: "not set"},
		{bin: "baldur", why: "an invalid config value", args: []string{"config", "set", "payments", `{"failure_threshold":-1}`}, env: cli(fleet.URL), want: 2, stderr: "failure_threshold"},
		{bin: "baldur", why: "an invalid service name", args: []string{"breaker", "get", "Not A Service!"}, env: cli(fleet.URL), want: 2},
		{bin: "baldur", why: "a fleet setting deleted without --force", args: []string{"config", "delete", "_defaults"}, env: cli(fleet.URL), want: 2, stderr: "--force"},
		{bin: "baldur", why: "unknown command", args: []string{"frobnicate"}, want: 2},
		{bin: "baldur", why: "unknown verb", args: []string{"breaker", "frobnicate"}, want: 2},
		{bin: "baldur", why: "unknown flag", args: []string{"breaker", "list", "--colour", "red"}, want: 2, stderr: "colour"},
		{bin: "baldur", why: "a flag's bad value", args: []string{"breaker", "list", "--timeout", "soon"}, want: 2, stderr: "timeout"},
		{bin: "baldur", why: "missing argument", args: []string{"breaker", "get"}, want: 2, stderr: "missing argument"},
		{bin: "baldur", why: "missing --reason", args: []string{"breaker", "open", "payments"}, env: cli(dead), want: 2, stderr: "--reason"},
		{bin: "baldur", why: "audit without --database-url", args: []string{"audit", "list"}, env: cli(fleet.URL), want: 2, stderr: "--database-url"},
		{bin: "baldur", why: "NATS unreachable", args: []string{"breaker", "list", "--timeout", "2s"}, env: cli(dead), want: 3, stderr: "unreachable"},
		{bin: "baldur", why: "no topology", args: []string{"breaker", "list", "--timeout", "2s"}, env: cli(bare.URL), want: 3},
		{bin: "baldur", why: "PostgreSQL unreachable", args: []string{"audit", "list", "--database-url", deadDB, "--timeout", "3s"}, env: cli(fleet.URL), want: 3, stderr: "PostgreSQL"},
	}
	for _, w := range []string{"breaker-worker", "replay-worker", "watchdog"} {
		// Enough for each worker to get past its checks to NATS.
		env := []string{"BALDUR_NATS_URL=" + dead, "BALDUR_DATABASE_URL=" + deadDB, key}
		cases = append(cases,
			exitCase{bin: w, why: "-h", args: []string{"-h"}, want: 0},
			exitCase{bin: w, why: "--version", args: []string{"--version"}, want: 0},
			exitCase{bin: w, why: "NATS unreachable", env: env, want: 1, stderr: "unreachable"},
			exitCase{bin: w, why: "unknown flag", args: []string{"--colour", "red"}, env: env, want: 2, stderr: "colour"},
			exitCase{bin: w, why: "a bad value of a variable", env: append(slices.Clone(env), "BALDUR_LOG_LEVEL=loud"), want: 2, stderr: "BALDUR_LOG_LEVEL"},
			exitCase{bin: w, why: "an unexpected argument", args: []string{"run"}, env: env, want: 2},
		)
	}
	cases = append(cases,
		exitCase{bin: "breaker-worker", why: "--partitions out of range", args: []string{"--partitions", "0"}, env: []string{"BALDUR_NATS_URL=" + dead}, want: 2, stderr: "--partitions"},
		exitCase{bin: "breaker-worker", why: "--lease-ttl too short", args: []string{"--lease-ttl", "10ms"}, env: []string{"BALDUR_NATS_URL=" + dead}, want: 2, stderr: "--lease-ttl"},
		exitCase{bin: "breaker-worker", why: "--batch-size negative", args: []string{"--batch-size", "-1"}, env: []string{"BALDUR_NATS_URL=" + dead}, want: 2, stderr: "--batch-size"},
		exitCase{bin: "replay-worker", why: "no --database-url", env: []string{"BALDUR_NATS_URL=" + dead, key}, want: 2, stderr: "--database-url"},
		exitCase{bin: "replay-worker", why: "no audit key", env: []string{"BALDUR_NATS_URL=" + dead, "BALDUR_DATABASE_URL=" + deadDB}, want: 2, stderr: "BALDUR_AUDIT_KEY"},
		exitCase{bin: "replay-worker", why: "a bad value", args: []string{"--ingest-batch", "-5"}, env: []string{"BALDUR_NATS_URL=" + dead, "BALDUR_DATABASE_URL=" + deadDB, key}, want: 2},
		exitCase{bin: "watchdog", why: "no --database-url", env: []string{"BALDUR_NATS_URL=" + dead, key}, want: 2, stderr: "--database-url"},
		exitCase{bin: "watchdog", why: "no audit key", env: []string{"BALDUR_NATS_URL=" + dead, "BALDUR_DATABASE_URL=" + deadDB}, want: 2, stderr: "BALDUR_AUDIT_KEY"},
		exitCase{bin: "watchdog", why: "a bad value", args: []string{"--tick", "-1s"}, env: []string{"BALDUR_NATS_URL=" + dead, "BALDUR_DATABASE_URL=" + deadDB, key}, want: 2},
	)

	// Every documented code of every binary has a case, and every case's
	// code is documented for its binary. A worker's clean stop (0 after
	// SIGTERM) is TestWorkerMetricsCarryBuildInfo.
	documented := map[string][]int{"baldur": documentedCodes(t, "cli.md", "## Exit codes")}
	for _, w := range []string{"breaker-worker", "replay-worker", "watchdog"} {
		documented[w] = documentedCodes(t, "operations.md", "## Exit codes")
	}
	require.ElementsMatch(t, cmdDirs(t), keys(documented), "every binary of cmd/ has documented exit codes")
	covered := map[string][]int{}
	for _, c := range cases {
		require.Contains(t, documented[c.bin], c.want, "%s (%s) exits %d, which its docs do not list", c.bin, c.why, c.want)
		if !slices.Contains(covered[c.bin], c.want) {
			covered[c.bin] = append(covered[c.bin], c.want)
		}
	}
	for bin, codes := range documented {
		require.ElementsMatch(t, codes, covered[bin], "%s: every documented exit code has a case", bin)
	}

	for _, c := range cases {
		t.Run(c.bin+"/"+c.why, func(t *testing.T) {
			t.Parallel()
			r := runBinary(t, c.bin, c.args, c.env)
			require.Equal(t, c.want, r.code, "%s %v\nstdout: %s\nstderr: %s", c.bin, c.args, r.stdout, r.stderr)
			if c.want != 0 {
				// The reason, after the binary's name: a worker's is its
				// last line (its flag package may print the usage
				// first), the CLI's its first (a usage line may follow).
				lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
				reason := lines[len(lines)-1]
				if c.bin == "baldur" {
					reason = lines[0]
				}
				require.True(t, strings.HasPrefix(reason, c.bin+": "), "stderr %q", r.stderr)
				require.Contains(t, reason, c.stderr)
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
