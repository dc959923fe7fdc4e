package devmode

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/admin"
	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/devstack"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/telemetry"
	"github.com/baldurfleet/baldur/internal/watchdog"
	"github.com/baldurfleet/baldur/internal/worker"
)

// Defaults of Config.
const (
	// DefaultDataDir is where NATS and PostgreSQL keep their data between
	// runs, relative to the working directory.
	DefaultDataDir = ".baldur"
	// DefaultNATSPort is the embedded nats-server's client port.
	DefaultNATSPort = devstack.DefaultNATSPort
	// DefaultHTTPAddr is where the admin API, the dashboard, /healthz,
	// /readyz and /metrics listen.
	DefaultHTTPAddr = admin.DefaultAddr
	// DefaultWatchdogTick is the watchdog's tick in dev mode: short, so that
	// recovery timeouts of a few seconds are acted on quickly.
	DefaultWatchdogTick = time.Second
	// DefaultStopTimeout bounds Stop when its context has no deadline.
	DefaultStopTimeout = 4 * time.Second
	// DefaultContinuousEvery is the replay-worker's period of continuous
	// drains in dev mode (services whose auto_replay is continuous).
	DefaultContinuousEvery = 2 * time.Second
	// DefaultMaxPendingPerService is the replay-worker's bound on one
	// service's live dead letters in PostgreSQL in dev mode: a laptop's
	// database, and low enough to see a flood refused (backlog_full).
	DefaultMaxPendingPerService = 10_000
	// DefaultCLI is Config.CLI's default: the CLI from the repository.
	DefaultCLI = "go run ./cmd/baldur"
	// RandomPort as Config.NATSPort lets the system choose the port.
	RandomPort = devstack.RandomPort
	// databaseName is the database dev mode creates in a local PostgreSQL.
	databaseName = "baldur"
	// startTimeout bounds the start of everything but PostgreSQL's initdb.
	startTimeout = 90 * time.Second
)

// Config configures a dev fleet. The zero value, with Out set, runs the fleet
// without the demo on the default ports with data under .baldur.
type Config struct {
	// DataDir holds nats/ and pg/ between runs; DefaultDataDir when empty.
	// Ignored with Ephemeral.
	DataDir string
	// Ephemeral keeps everything in temporary directories removed at Stop.
	Ephemeral bool
	// NATSPort is the embedded nats-server's port on 127.0.0.1;
	// DefaultNATSPort when 0, RandomPort to let the system choose.
	NATSPort int
	// HTTPAddr is where the admin API and dashboard listen, with /healthz,
	// /readyz and /metrics next to them; DefaultHTTPAddr when empty (port 0
	// chooses a free port).
	HTTPAddr string
	// AdminToken is the bearer token the admin API's writes need; empty
	// makes the dashboard read-only.
	AdminToken string
	// DatabaseURL names the PostgreSQL to use; empty starts a local one from
	// the installed server binaries (data under DataDir/pg).
	DatabaseURL string
	// NodeID prefixes the node ids of the workers; "dev" when empty.
	NodeID string
	// WatchdogTick is the watchdog's tick; DefaultWatchdogTick when 0.
	WatchdogTick time.Duration
	// Demo runs the demo (see DemoConfig) once the fleet is up.
	Demo bool
	// DemoConfig tunes the demo; zero fields take their defaults.
	DemoConfig DemoConfig
	// CLI is how the banner tells to run the baldur CLI in another terminal:
	// a command, or the path of the binary (shown relative to the working
	// directory when below it); DefaultCLI when empty.
	CLI string
	// AuditKey is the key the audit log is chained with; empty keeps one in
	// DataDir/audit.key (made on the first run, mode 0600), or in the
	// temporary directory with Ephemeral.
	AuditKey domain.AuditKey
	// Out receives the banner and the demo's story; io.Discard when nil.
	Out io.Writer
	// Logger receives the components' logs; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.NATSPort == 0 {
		c.NATSPort = DefaultNATSPort
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.NodeID == "" {
		c.NodeID = "dev"
	}
	if c.CLI == "" {
		c.CLI = DefaultCLI
	}
	if c.WatchdogTick == 0 {
		c.WatchdogTick = DefaultWatchdogTick
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.NATSPort != RandomPort && (c.NATSPort < 1 || c.NATSPort > 65535):
		return c, fmt.Errorf("%w: --nats-port %d is not a TCP port (1 to 65535)", ErrConfig, c.NATSPort)
	case c.WatchdogTick < 10*time.Millisecond:
		return c, fmt.Errorf("%w: watchdog tick %s is below 10ms", ErrConfig, c.WatchdogTick)
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return c, fmt.Errorf("%w: --http-addr %q: %v", ErrConfig, c.HTTPAddr, err)
	}
	if c.Demo {
		var err error
		if c.DemoConfig, err = c.DemoConfig.withDefaults(); err != nil {
			return c, err
		}
	}
	return c, nil
}

// Fleet is a running dev fleet. Stop it with Stop.
type Fleet struct {
	cfg      Config
	log      *slog.Logger
	natsURL  string
	dbURL    string
	adminURL string
	demo     *Demo
	// pgKept says where a local PostgreSQL keeps its data when that is not
	// under DataDir ("" otherwise).
	pgKept string
	// auditKeyFile is the file the audit key was read from or kept in ("":
	// Config.AuditKey was given).
	auditKeyFile string

	// stops run in reverse order at Stop.
	stops []func(ctx context.Context) error
}

// Start starts the fleet and returns once every part runs (and, with
// Config.Demo, the demo has begun). It checks the ports first, so a taken
// port fails at once with an error wrapping ErrPortTaken that names it. On
// any failure what was started is stopped again.
func Start(ctx context.Context, cfg Config) (_ *Fleet, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkPorts(cfg); err != nil {
		return nil, err
	}
	f := &Fleet{cfg: cfg, log: cfg.Logger}
	defer func() {
		if err != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultStopTimeout)
			defer cancel()
			_ = f.Stop(sctx)
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	natsDir, pgDir, err := f.dirs()
	if err != nil {
		return nil, err
	}
	if err := f.startNATS(sctx, natsDir); err != nil {
		return nil, err
	}
	if err := f.startPostgres(sctx, pgDir); err != nil {
		return nil, err
	}
	res, err := f.open(sctx)
	if err != nil {
		return nil, err
	}
	checks, err := f.startWorkers(ctx, sctx, res)
	if err != nil {
		return nil, err
	}
	ops, err := f.startHTTP(ctx, sctx, res, checks)
	if err != nil {
		return nil, err
	}
	f.banner()
	if cfg.Demo {
		d, err := startDemo(ctx, sctx, f, ops)
		if err != nil {
			return nil, err
		}
		f.demo = d
		f.onStop(d.stop)
	}
	return f, nil
}

// Run starts the fleet, runs it until ctx ends (Ctrl-C) and stops it within
// DefaultStopTimeout.
func Run(ctx context.Context, cfg Config) error {
	f, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(f.cfg.Out, "stopping ...")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultStopTimeout)
	defer cancel()
	if err := f.Stop(sctx); err != nil {
		return err
	}
	fmt.Fprintln(f.cfg.Out, "stopped")
	return nil
}

// NATSURL is the embedded nats-server's client URL.
func (f *Fleet) NATSURL() string { return f.natsURL }

// DatabaseURL is the PostgreSQL URL the fleet uses.
func (f *Fleet) DatabaseURL() string { return f.dbURL }

// AdminURL is the dashboard's URL (the API is under /api/; /healthz,
// /readyz and /metrics are served next to it).
func (f *Fleet) AdminURL() string { return f.adminURL }

// Demo is the running demo, nil without Config.Demo.
func (f *Fleet) Demo() *Demo { return f.demo }

// Stop stops every part in the reverse order of their start, the demo
// first and the nats-server and PostgreSQL last, within ctx (DefaultStopTimeout
// when ctx has no deadline). It is safe to call more than once.
func (f *Fleet) Stop(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultStopTimeout)
		defer cancel()
	}
	var errs []error
	for i := len(f.stops) - 1; i >= 0; i-- {
		if err := f.stops[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	f.stops = nil
	return errors.Join(errs...)
}

func (f *Fleet) onStop(fn func(ctx context.Context) error) { f.stops = append(f.stops, fn) }

func (f *Fleet) onClose(fn func()) {
	f.onStop(func(context.Context) error { fn(); return nil })
}

// checkPorts fails when the NATS port or the HTTP address is taken, before
// anything slow starts.
func checkPorts(cfg Config) error {
	if cfg.NATSPort != RandomPort {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.NATSPort))
		if err := probe(addr); err != nil {
			return fmt.Errorf("%w: NATS port %d on 127.0.0.1 is in use (another baldur dev or nats-server?): choose another with --nats-port",
				ErrPortTaken, cfg.NATSPort)
		}
	}
	if err := probe(cfg.HTTPAddr); err != nil {
		return fmt.Errorf("%w: cannot listen on %s for the dashboard (%v): choose another address with --http-addr",
			ErrPortTaken, cfg.HTTPAddr, errors.Unwrap(err))
	}
	return nil
}

func probe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return ln.Close()
}

// dirs returns the directories of NATS and PostgreSQL ("" for PostgreSQL
// means a temporary one, or none with Config.DatabaseURL).
func (f *Fleet) dirs() (natsDir, pgDir string, err error) {
	if f.cfg.Ephemeral {
		tmp, err := os.MkdirTemp("", "baldur-dev-")
		if err != nil {
			return "", "", fmt.Errorf("%w: temporary directory: %w", ErrStart, err)
		}
		f.onStop(func(context.Context) error { return os.RemoveAll(tmp) })
		if err := f.auditKey(tmp); err != nil {
			return "", "", err
		}
		return filepath.Join(tmp, "nats"), "", nil
	}
	root, err := filepath.Abs(f.cfg.DataDir)
	if err != nil {
		return "", "", fmt.Errorf("%w: --data-dir %s: %w", ErrStart, f.cfg.DataDir, err)
	}
	natsDir = filepath.Join(root, "nats")
	if err := os.MkdirAll(natsDir, 0o755); err != nil {
		return "", "", fmt.Errorf("%w: --data-dir: %w", ErrStart, err)
	}
	if err := f.auditKey(root); err != nil {
		return "", "", err
	}
	return natsDir, filepath.Join(root, "pg"), nil
}

// auditKeyName is the file under the data directory that keeps dev mode's
// audit key.
const auditKeyName = "audit.key"

// auditKey settles the audit key: Config.AuditKey when given, else the one
// kept in dir/audit.key, made (32 random bytes, hex) when there is none.
func (f *Fleet) auditKey(dir string) error {
	if len(f.cfg.AuditKey) > 0 {
		return nil
	}
	path := filepath.Join(dir, auditKeyName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		raw := make([]byte, 32)
		_, _ = rand.Read(raw)
		b = []byte(hex.EncodeToString(raw) + "\n")
		err = os.WriteFile(path, b, 0o600)
	}
	if err != nil {
		return fmt.Errorf("%w: audit key %s: %w", ErrStart, path, err)
	}
	if f.cfg.AuditKey, err = domain.ParseAuditKey(b); err != nil {
		return fmt.Errorf("%w: audit key %s: %w (remove it to make a new one: the audit log then no longer verifies)", ErrStart, path, err)
	}
	f.auditKeyFile = path
	return nil
}

func (f *Fleet) startNATS(ctx context.Context, dir string) error {
	n, err := devstack.StartNATS(ctx, devstack.NATSOptions{
		Port: f.cfg.NATSPort, StoreDir: dir, ServerName: f.cfg.NodeID,
		Logger: f.log.With(slog.String("component", "nats-server")),
	})
	if err != nil {
		return fmt.Errorf("%w: embedded nats-server on port %d: %w", ErrStart, f.cfg.NATSPort, err)
	}
	f.onClose(n.Shutdown)
	f.natsURL = n.ClientURL()
	return nil
}

func (f *Fleet) startPostgres(ctx context.Context, dir string) error {
	if f.cfg.DatabaseURL != "" {
		f.dbURL = f.cfg.DatabaseURL
		return nil
	}
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{Dir: dir, Durable: dir != ""})
	if err != nil {
		return fmt.Errorf("%w: local PostgreSQL (or set --database-url / $%s): %w", ErrStart, process.EnvDatabaseURL, err)
	}
	f.onStop(pg.Stop)
	if from := pg.LinkedFrom(); from != "" {
		f.pgKept = fmt.Sprintf("PostgreSQL data in %s, where the postgres user can reach it; %s links there",
			pg.Dir(), f.rel(from))
	}
	conn, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		return fmt.Errorf("%w: connect to the local PostgreSQL: %w", ErrStart, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", databaseName).Scan(&exists); err != nil {
		return fmt.Errorf("%w: look for database %s: %w", ErrStart, databaseName, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+databaseName); err != nil {
			return fmt.Errorf("%w: create database %s: %w", ErrStart, databaseName, err)
		}
	}
	f.dbURL = pg.DatabaseURL(databaseName)
	return nil
}

// devName names dev mode's process in NATS and telemetry.
const devName = "baldur-dev"

// open opens what the workers share (worker.Open): telemetry, one NATS
// connection, PostgreSQL migrated, the topology and the fleet-state view.
func (f *Fleet) open(ctx context.Context) (*worker.Resources, error) {
	pc := process.Config{NATSURL: f.natsURL, DatabaseURL: f.dbURL, NodeID: f.cfg.NodeID, Replicas: 1}
	res, err := worker.Open(ctx, pc, worker.Options{
		Name:   devName,
		Roles:  []worker.Role{worker.RoleBreaker, worker.RoleReplay, worker.RoleWatchdog},
		Logger: f.logger("worker"), StartTimeout: startTimeout, AuditKey: f.cfg.AuditKey,
	})
	if errors.Is(err, process.ErrInvalidConfig) {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	f.onStop(res.Close)
	return res, nil
}

// connect opens a NATS connection named after a component, closed at Stop.
func (f *Fleet) connect(component string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(f.natsURL, nats.Name("baldur dev "+component), nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: connect %s to NATS: %w", ErrStart, component, err)
	}
	f.onClose(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: JetStream for %s: %w", ErrStart, component, err)
	}
	return nc, js, nil
}

func (f *Fleet) node(role string) string { return f.cfg.NodeID + "-" + role }

func (f *Fleet) logger(component string) *slog.Logger {
	return f.log.With(slog.String("component", component))
}

// startWorkers starts a breaker-worker, a replay-worker (continuous drains
// every DefaultContinuousEvery) and the watchdog (tick Config.WatchdogTick)
// on res, and returns their readiness checks. life bounds the workers, ctx
// their start.
func (f *Fleet) startWorkers(life, ctx context.Context, res *worker.Resources) ([]telemetry.Check, error) {
	b, err := worker.StartBreaker(ctx, res, breaker.Config{Node: f.node("breaker"), Logger: f.logger("breaker-worker")})
	if err != nil {
		return nil, fmt.Errorf("%w: breaker-worker: %w", ErrStart, err)
	}
	f.onStop(b.Stop)
	rc := replay.Config{
		NodeID:          f.node("replay"),
		Ingest:          replay.IngestConfig{MaxPendingPerService: DefaultMaxPendingPerService},
		Trigger:         replay.TriggerConfig{ContinuousEvery: DefaultContinuousEvery},
		ShutdownTimeout: DefaultStopTimeout,
	}.WithDefaults()
	if err := rc.Validate(); err != nil {
		return nil, fmt.Errorf("%w: replay-worker: %w", ErrStart, err)
	}
	r, err := worker.StartReplay(life, res, worker.ReplayConfig{Config: rc, Logger: f.logger("replay-worker")})
	if err != nil {
		return nil, fmt.Errorf("%w: replay-worker: %w", ErrStart, err)
	}
	f.onStop(r.Stop)
	w, err := worker.StartWatchdog(life, res, watchdog.Config{Node: f.node("watchdog"), Tick: f.cfg.WatchdogTick, Logger: f.logger("watchdog")})
	if err != nil {
		return nil, fmt.Errorf("%w: watchdog: %w", ErrStart, err)
	}
	f.onStop(w.Stop)
	return slices.Concat(b.Checks(), r.Checks(), w.Checks()), nil
}

// startHTTP serves, on Config.HTTPAddr, the admin API and dashboard next to
// /healthz, /readyz (NATS, PostgreSQL and the workers' checks) and /metrics,
// and returns the operator client the admin API writes with.
func (f *Fleet) startHTTP(life, ctx context.Context, res *worker.Resources, checks []telemetry.Check) (*opsclient.Client, error) {
	nc, _, err := f.connect("admin")
	if err != nil {
		return nil, err
	}
	ops, err := opsclient.New(ctx, nc, opsclient.WithSource(f.node("admin")), opsclient.WithAuditStore(res.Store()))
	if err != nil {
		return nil, fmt.Errorf("%w: operator client: %w", ErrStart, err)
	}
	srv, err := admin.New(admin.Config{Addr: f.cfg.HTTPAddr, AdminToken: f.cfg.AdminToken, DLQPoll: time.Second, Logger: f.logger("admin")},
		admin.Deps{JetStream: ops.JetStream(), Operator: ops})
	if err != nil {
		return nil, fmt.Errorf("%w: admin: %w", ErrStart, err)
	}
	if err := srv.StartFeeds(life); err != nil {
		return nil, fmt.Errorf("%w: admin: %w", ErrStart, err)
	}
	health := res.Health(checks...)
	mux := http.NewServeMux()
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		mux.Handle("GET "+path, health)
	}
	mux.Handle("/", srv.Handler())
	hs, err := telemetry.Serve(f.cfg.HTTPAddr, mux, f.logger("http"))
	if err != nil {
		err = errors.Join(err, srv.Stop(ctx))
		if errors.Is(err, telemetry.ErrListen) {
			return nil, fmt.Errorf("%w: %w", ErrPortTaken, err)
		}
		return nil, fmt.Errorf("%w: admin: %w", ErrStart, err)
	}
	// The admin server first: it ends the SSE streams the HTTP server would
	// otherwise wait for.
	f.onStop(func(ctx context.Context) error {
		err := srv.Stop(ctx)
		hs.Close()
		return err
	})
	f.adminURL = "http://" + hs.Addr().String() + "/"
	return ops, nil
}

// rel is path relative to the working directory when it is an absolute path
// below it, else path unchanged.
func (f *Fleet) rel(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	if r, err := filepath.Rel(wd, path); err == nil && filepath.IsAbs(path) && filepath.IsLocal(r) {
		return r
	}
	return path
}

// keyFlag is the --audit-key-file flag the banner's `audit verify` needs.
func (f *Fleet) keyFlag() string {
	if f.auditKeyFile == "" {
		return " --audit-key-file <the key's file>"
	}
	return " --audit-key-file " + f.rel(f.auditKeyFile)
}

// banner prints where everything is and what to try.
func (f *Fleet) banner() {
	w := f.cfg.Out
	data := "kept under " + f.cfg.DataDir
	if f.cfg.Ephemeral {
		data = "ephemeral (removed at exit)"
	}
	db := "local PostgreSQL"
	if f.cfg.DatabaseURL != "" {
		db = "PostgreSQL from --database-url"
	}
	fmt.Fprintf(w, "baldur dev: the fleet is up (data %s)\n", data)
	if f.pgKept != "" {
		fmt.Fprintf(w, "  %s\n", f.pgKept)
	}
	fmt.Fprintf(w, "  NATS       %s (embedded, JetStream)\n", f.natsURL)
	fmt.Fprintf(w, "  database   %s (%s)\n", process.Redact(f.dbURL), db)
	fmt.Fprintf(w, "  workers    breaker-worker, replay-worker, watchdog (tick %s)\n", f.cfg.WatchdogTick)
	fmt.Fprintf(w, "  dashboard  %s\n", f.adminURL)
	fmt.Fprintf(w, "  health     %shealthz, %sreadyz, %smetrics\n", f.adminURL, f.adminURL, f.adminURL)
	if f.cfg.AdminToken == "" {
		fmt.Fprintln(w, "             read-only: pass --admin-token to allow writes from the dashboard")
	}
	env := ""
	if f.natsURL != process.DefaultNATSURL {
		env = "BALDUR_NATS_URL=" + f.natsURL + " "
	}
	fmt.Fprintln(w, "try, in another terminal:")
	for _, c := range []string{
		"breaker list",
		"breaker get payments",
		"dlq stats",
		"dlq list --service payments --status pending",
		"breaker open payments --reason \"trying it out\" --ttl 1m",
		"audit list --database-url '" + f.dbURL + "'",
		"audit verify --database-url '" + f.dbURL + "'" + f.keyFlag(),
	} {
		fmt.Fprintf(w, "  %s%s %s\n", env, f.rel(f.cfg.CLI), c)
	}
	fmt.Fprintln(w, "Ctrl-C stops everything.")
}
