package deploytest

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/buildinfo"
	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/telemetry"
)

// cliCommands are the `baldur` commands a manifest may run.
var cliCommands = []string{"admin"}

// flagSpec is what a binary (or a `baldur` command) accepts: its flags and
// the environment variables it reads.
type flagSpec struct {
	flags map[string]bool
	envs  map[string]bool
}

// testVersion is the version binDir stamps into the binaries, as the
// Makefile and the Dockerfile do.
const testVersion = "0.0.0-deploytest"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
	buildOut  []byte
)

// binDir builds every binary under cmd/ once per test binary, with
// testVersion stamped in, into a directory removed when the tests end (see
// TestMain).
func binDir(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "deploytest-bin-")
		if buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X "+buildinfo.VersionVar+"="+testVersion,
			"-o", buildDir+string(filepath.Separator), "./cmd/...")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	require.NoError(t, buildErr, "go build ./cmd/...: %s", buildOut)
	return buildDir
}

// cmdDirs lists the directories of cmd/: the binaries there are.
func cmdDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(path("cmd"))
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	require.NotEmpty(t, out)
	return out
}

var (
	// flagLine matches a flag in a usage: "  -batch-size int" (package
	// flag) or "  --admin-token string  ..." (the baldur CLI).
	flagLine = regexp.MustCompile(`(?m)^\s+--?([a-z][a-z0-9-]*)\b`)
	// envRef matches the environment twin a usage names: "($BALDUR_X)".
	envRef = regexp.MustCompile(`\(\$([A-Z][A-Z0-9_]*)\)`)
)

// parseUsage collects the flags and environment variables of a usage text.
func parseUsage(usage string) flagSpec {
	s := flagSpec{flags: map[string]bool{}, envs: map[string]bool{}}
	for _, m := range flagLine.FindAllStringSubmatch(usage, -1) {
		s.flags[m[1]] = true
	}
	for _, m := range envRef.FindAllStringSubmatch(usage, -1) {
		s.envs[m[1]] = true
	}
	return s
}

// sharedSpec is the flags and environment twins every binary has
// (process.NewFlags), including those a usage hides.
func sharedSpec() flagSpec {
	s := flagSpec{flags: map[string]bool{}, envs: map[string]bool{}}
	process.NewFlags("x").FlagSet().VisitAll(func(f *flag.Flag) {
		s.flags[f.Name] = true
		for _, m := range envRef.FindAllStringSubmatch(f.Usage, -1) {
			s.envs[m[1]] = true
		}
	})
	return s
}

// otelEnvs are the OpenTelemetry variables the binaries honour (through
// internal/telemetry and the OpenTelemetry SDK).
var otelEnvs = []string{
	telemetry.EnvTracesExporter, telemetry.EnvMetricsExporter, telemetry.EnvOTLPEndpoint,
	telemetry.EnvOTLPTracesEndpoint, telemetry.EnvOTLPMetricsEndpoint,
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_SERVICE_NAME",
	"OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
}

var (
	specsOnce sync.Once
	specs     map[string]flagSpec
	specsErr  error
)

// binarySpecs returns the flags and variables of every worker binary (by
// name) and of every `baldur` command in cliCommands ("baldur admin"), from
// their -h output.
func binarySpecs(t *testing.T) map[string]flagSpec {
	t.Helper()
	dir := binDir(t)
	names := cmdDirs(t)
	specsOnce.Do(func() {
		specs = map[string]flagSpec{}
		shared := sharedSpec()
		help := func(args ...string) (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out bytes.Buffer
			cmd := exec.CommandContext(ctx, filepath.Join(dir, args[0]), args[1:]...)
			cmd.Stdout, cmd.Stderr = &out, &out
			cmd.Env = []string{} // no BALDUR_* from the test's environment
			err := cmd.Run()
			return out.String(), err
		}
		add := func(key string, usage string) {
			s := parseUsage(usage)
			for f := range shared.flags {
				s.flags[f] = true
			}
			for e := range shared.envs {
				s.envs[e] = true
			}
			for _, e := range otelEnvs {
				s.envs[e] = true
			}
			specs[key] = s
		}
		for _, name := range names {
			if name == "baldur" {
				for _, c := range cliCommands {
					out, err := help("baldur", c, "--help")
					if err != nil {
						specsErr = err
						return
					}
					add("baldur "+c, out)
				}
				continue
			}
			out, err := help(name, "-h")
			if err != nil {
				specsErr = err
				return
			}
			add(name, out)
		}
	})
	require.NoError(t, specsErr)
	return specs
}

// specOf returns the spec of the command line argv (binary first).
func specOf(t *testing.T, where string, argv []string) (string, flagSpec) {
	t.Helper()
	require.NotEmpty(t, argv, "%s: no command", where)
	all := binarySpecs(t)
	key := argv[0]
	if key == "baldur" {
		require.GreaterOrEqual(t, len(argv), 2, "%s: baldur without a command", where)
		require.Contains(t, cliCommands, argv[1], "%s: baldur %s is not a command the manifests may run", where, argv[1])
		key = "baldur " + argv[1]
	}
	s, ok := all[key]
	require.True(t, ok, "%s: %q is not a binary of cmd/ (have %v)", where, argv[0], cmdDirs(t))
	return key, s
}

// checkArgs checks that every --flag of argv exists and returns the
// value of each (flag → value).
func checkArgs(t *testing.T, where string, argv []string) map[string]string {
	t.Helper()
	key, s := specOf(t, where, argv)
	vals := map[string]string{}
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		require.True(t, s.flags[name], "%s: %s has no flag --%s (flags: %v)", where, key, name, sortedKeys(s.flags))
		if !hasVal && i+1 < len(argv) {
			val = argv[i+1]
			i++
		}
		vals[name] = val
	}
	return vals
}

// checkEnv checks that the binary of argv reads variable name.
func checkEnv(t *testing.T, where string, argv []string, name string) {
	t.Helper()
	key, s := specOf(t, where, argv)
	require.True(t, s.envs[name], "%s: %s reads no environment variable %s (it reads %v)", where, key, name, sortedKeys(s.envs))
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestBinariesDeclareTheirFlags(t *testing.T) {
	t.Parallel()
	all := binarySpecs(t)
	for _, name := range []string{"breaker-worker", "replay-worker", "watchdog", "baldur admin"} {
		s, ok := all[name]
		require.True(t, ok, name)
		for _, f := range []string{"nats-url", "http-addr", "replicas"} {
			require.True(t, s.flags[f], "%s --%s", name, f)
		}
		require.True(t, s.envs[process.EnvNATSURL], name)
	}
	require.True(t, all["breaker-worker"].flags["partitions"])
	require.True(t, all["baldur admin"].envs["BALDUR_ADMIN_TOKEN"])
}
