package cli

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/baldurfleet/baldur/internal/devmode"
	"github.com/baldurfleet/baldur/internal/process"
)

// Environment twins of the flags of `baldur dev`.
const (
	EnvDevDataDir  = "BALDUR_DEV_DATA_DIR"
	EnvDevNATSPort = "BALDUR_DEV_NATS_PORT"
)

// devFlags are the flags of `baldur dev` beyond the shared ones.
type devFlags struct {
	demo, ephemeral *bool
	dataDir, token  *string
	natsPort        *int
	// quiet is set when --log-level was not given and its twin is unset
	// (or "info"): the components then log warnings and errors only, so that
	// the story reads well.
	quiet bool
}

func devCommands() []*command {
	return []*command{{
		noun: "dev", needs: wantAuditKey,
		summary: "run the whole fleet in one process: embedded NATS, PostgreSQL, the three workers and " +
			"the dashboard; --demo adds a flaky payments service and tells its story",
		examples: []string{"baldur dev --demo",
			"baldur dev --demo --ephemeral --nats-port 4333 --http-addr 127.0.0.1:8081",
			"BALDUR_DATABASE_URL=postgres://me@localhost/baldur baldur dev --admin-token s3cret"},
		flags: func(f *process.Flags) func() any {
			fs := f.FlagSet()
			fs.Lookup("http-addr").Usage = "address of the dashboard, the admin API, /healthz, /readyz and /metrics (default " +
				devmode.DefaultHTTPAddr + ") ($" + process.EnvHTTPAddr + ")"
			d := &devFlags{
				demo:      fs.Bool("demo", false, "run the demo: a flaky payments dependency, SDK clients, and the story in the log"),
				ephemeral: fs.Bool("ephemeral", false, "keep nothing: NATS and PostgreSQL data in temporary directories removed at exit"),
				dataDir:   f.String("data-dir", EnvDevDataDir, devmode.DefaultDataDir, "directory of the NATS and PostgreSQL data kept between runs"),
				natsPort:  f.Int("nats-port", EnvDevNATSPort, devmode.DefaultNATSPort, "port of the embedded nats-server on 127.0.0.1"),
				token:     f.String("admin-token", EnvAdminToken, "", "bearer token for writes from the dashboard and the admin API (empty: read-only)"),
			}
			return func() any {
				set := false
				fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == "log-level" })
				d.quiet = !set && fs.Lookup("log-level").Value.String() == process.DefaultLogLevel
				return d
			}
		},
		run: runDev,
	}}
}

func runDev(r *runner, _ []string) error {
	d := r.extra.(*devFlags)
	cfg := r.cfg
	if d.quiet {
		cfg.LogLevel = max(cfg.LogLevel, slog.LevelWarn)
	}
	err := devmode.Run(r.ctx, devmode.Config{
		DataDir: *d.dataDir, Ephemeral: *d.ephemeral, NATSPort: *d.natsPort,
		HTTPAddr: r.cfg.HTTPAddr, AdminToken: *d.token, DatabaseURL: r.cfg.DatabaseURL,
		NodeID: r.cfg.NodeID, Demo: *d.demo, AuditKey: r.auditKey, Out: r.stdout, Logger: cfg.Logger(r.stderr),
		CLI: invocation(),
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, devmode.ErrConfig):
		return usagef("dev: %v", err)
	}
	return fmt.Errorf("%w: dev: %w", ErrFailed, err)
}

// invocation is how to run this CLI again from another terminal: the path of
// this binary, or "" (devmode.DefaultCLI) for one `go run` built in its cache.
func invocation() string {
	exe, err := os.Executable()
	if err != nil || strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return ""
	}
	return exe
}
