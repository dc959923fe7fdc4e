// Package cli is the baldur operator CLI: `baldur <noun> <verb> [args]
// [flags]` over the operator client (internal/opsclient). cmd/baldur is a
// thin main around Run.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/baldurfleet/baldur/internal/buildinfo"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/store"
)

// Name is the program's name.
const Name = "baldur"

// DefaultTimeout bounds a command: connecting, and waiting until the fleet
// applied it.
const DefaultTimeout = 5 * time.Second

// EnvActor is the environment twin of --actor.
const EnvActor = "BALDUR_ACTOR"

// need says what a command connects to before it runs.
type need uint8

const (
	needNATS need = 1 << iota
	needDB
	// needDBIfSet connects to PostgreSQL when --database-url is given.
	needDBIfSet
	// needAuditKey takes --audit-key-file (or $BALDUR_AUDIT_KEY) and fails
	// without it: the command verifies the keyed audit log.
	needAuditKey
	// wantAuditKey takes --audit-key-file when given: without it, what
	// needs the key (the admin's audit verification) says so when asked.
	wantAuditKey
	// needReconnect keeps the NATS connection for ever: a long-running
	// server (baldur admin) reconnects with backoff after NATS restarts.
	needReconnect
)

// command is one `baldur <noun> <verb>`.
type command struct {
	noun, verb string
	// args names the positional arguments; optional ones end with "?".
	args     []string
	summary  string
	examples []string
	// manual commands need --reason.
	manual bool
	needs  need
	// flags registers the command's own flags.
	flags func(fs *process.Flags) func() any
	// check validates the positional arguments before anything connects.
	check func(args []string) error
	run   func(r *runner, args []string) error
}

func (c *command) name() string {
	if c.verb == "" {
		return c.noun
	}
	return c.noun + " " + c.verb
}

func (c *command) usageLine() string {
	var b strings.Builder
	b.WriteString(Name + " " + c.name())
	for _, a := range c.args {
		if n, ok := strings.CutSuffix(a, "?"); ok {
			b.WriteString(" [" + n + "]")
		} else {
			b.WriteString(" " + a)
		}
	}
	if c.manual {
		b.WriteString(" --reason TEXT")
	}
	b.WriteString(" [flags]")
	return b.String()
}

// runner is what a command runs with.
type runner struct {
	ctx            context.Context
	stdout, stderr io.Writer
	cfg            process.Config
	actor, reason  string
	json           bool
	timeout        time.Duration
	client         *opsclient.Client
	store          *store.Store
	now            func() time.Time
	extra          any
	auditKey       domain.AuditKey
	// natsClosed is closed when the NATS connection closes (the CLI never
	// reconnects): a long-running command ends with an error.
	natsClosed chan struct{}
}

// Run runs the CLI with args (without the program name), writing results to
// stdout and diagnostics to stderr, and returns the exit code (ExitOK,
// ExitFailed, ExitUsage, ExitUnreachable). Environment twins of the flags
// are read with os.Getenv. ctx ends `breaker watch` (Ctrl-C).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return RunEnv(ctx, args, stdout, stderr, os.Getenv)
}

// RunEnv is Run with the environment read through getenv.
func RunEnv(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		topUsage(stderr)
		return ExitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			return RunEnv(ctx, append(args[1:], "--help"), stdout, stderr, getenv)
		}
		topUsage(stdout)
		return ExitOK
	case "--version", "-version":
		buildinfo.Print(stdout, Name)
		return ExitOK
	}
	noun := args[0]
	verbs := commandsOf(noun)
	if len(verbs) == 0 {
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n", Name, noun)
		topUsage(stderr)
		return ExitUsage
	}
	if cmd := findCommand(noun, ""); cmd != nil {
		return runCommand(ctx, cmd, args[1:], stdout, stderr, getenv)
	}
	if len(args) < 2 || isHelp(args[1]) {
		w, code := stderr, ExitUsage
		if len(args) >= 2 {
			w, code = stdout, ExitOK
		}
		nounUsage(w, noun, verbs)
		return code
	}
	cmd := findCommand(noun, args[1])
	if cmd == nil {
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n", Name, noun+" "+args[1])
		nounUsage(stderr, noun, verbs)
		return ExitUsage
	}
	return runCommand(ctx, cmd, args[2:], stdout, stderr, getenv)
}

func isHelp(s string) bool { return s == "-h" || s == "-help" || s == "--help" || s == "help" }

// cmdFlags are the flags every command takes, besides its own and the
// shared process flags.
type cmdFlags struct {
	actor, reason, keyFile *string
	asJSON                 *bool
	timeout                *time.Duration
	extra                  func() any
}

// newCmdFlags registers the flags of cmd: the shared process flags, the
// CLI's own (actor, reason, json, timeout), the audit key where the command
// needs it, and the command's. runCommand parses them; completion lists
// them.
func newCmdFlags(cmd *command) (*process.Flags, cmdFlags) {
	f := process.NewFlags(Name + " " + cmd.name())
	fs := f.FlagSet()
	// Parse's own messages are discarded: the errors it returns are printed
	// once, with the usage line, by fail.
	fs.SetOutput(io.Discard)
	var c cmdFlags
	c.actor = f.String("actor", EnvActor, defaultActor(), "who is acting, recorded with the command and in the audit log")
	c.reason = fs.String("reason", "", "why; required for manual actions")
	c.asJSON = fs.Bool("json", false, "print machine-readable JSON instead of tables")
	c.timeout = fs.Duration("timeout", DefaultTimeout, "how long to wait for NATS and for the fleet to apply the command")
	if cmd.needs&(needAuditKey|wantAuditKey) != 0 {
		c.keyFile = f.AuditKeyFile()
	}
	if cmd.flags != nil {
		c.extra = cmd.flags(f)
	}
	fs.Usage = func() {}
	return f, c
}

func runCommand(ctx context.Context, cmd *command, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	f, cf := newCmdFlags(cmd)
	fs := f.FlagSet()
	actor, reason, asJSON, timeout, keyFile, extra := cf.actor, cf.reason, cf.asJSON, cf.timeout, cf.keyFile, cf.extra

	flags, pos, err := splitArgs(fs, args)
	if err != nil {
		return fail(stderr, false, usagef("%s: %v", cmd.name(), err), cmd)
	}
	cfg, err := f.Parse(flags, getenv)
	if errors.Is(err, flag.ErrHelp) {
		commandUsage(stdout, cmd, fs)
		return ExitOK
	}
	if err != nil {
		return fail(stderr, *asJSON, fmt.Errorf("%w: %s: %w", ErrUsage, cmd.name(), err), cmd)
	}
	if err := checkArgs(cmd, pos); err != nil {
		return fail(stderr, *asJSON, err, cmd)
	}
	if cmd.check != nil {
		if err := cmd.check(pos); err != nil {
			return fail(stderr, *asJSON, err, cmd)
		}
	}
	if cmd.manual && strings.TrimSpace(*reason) == "" {
		return fail(stderr, *asJSON, usagef("%s: --reason is required: manual actions are audited with who and why", cmd.name()), cmd)
	}
	if cmd.manual && strings.TrimSpace(*actor) == "" {
		return fail(stderr, *asJSON, usagef("%s: --actor is empty and the OS user is unknown", cmd.name()), cmd)
	}
	if *timeout <= 0 {
		return fail(stderr, *asJSON, usagef("%s: --timeout must be positive", cmd.name()), cmd)
	}
	r := &runner{ctx: ctx, stdout: stdout, stderr: stderr, cfg: cfg, actor: strings.TrimSpace(*actor),
		reason: strings.TrimSpace(*reason), json: *asJSON, timeout: *timeout, now: time.Now}
	if extra != nil {
		r.extra = extra()
	}
	if keyFile != nil {
		k, err := process.LoadAuditKey(*keyFile, getenv)
		switch {
		case err == nil:
			r.auditKey = k
		case errors.Is(err, process.ErrNoAuditKey) && cmd.needs&needAuditKey == 0:
		default:
			return fail(stderr, *asJSON, fmt.Errorf("%w: %s: %w", ErrUsage, cmd.name(), err), cmd)
		}
	}
	closeAll, err := r.connect(cmd.needs)
	if err != nil {
		return fail(stderr, r.json, err, cmd)
	}
	defer closeAll()
	if err := cmd.run(r, pos); err != nil {
		return fail(stderr, r.json, err, cmd)
	}
	return ExitOK
}

// fail prints err (as JSON with --json) and returns its exit code; a usage
// error also shows the command's usage line.
func fail(w io.Writer, asJSON bool, err error, cmd *command) int {
	code := ExitCode(err)
	msg := strings.TrimPrefix(err.Error(), ErrUsage.Error()+": ")
	if asJSON {
		out := map[string]any{"error": msg, "exit_code": code}
		var ref *opsclient.RefusedError
		if errors.As(err, &ref) {
			out["refused"] = ref
		}
		var apiErr *opsclient.APIError
		if errors.As(err, &apiErr) {
			out["status"] = apiErr.Code
		}
		_ = json.NewEncoder(w).Encode(out)
		return code
	}
	fmt.Fprintf(w, "%s: %s\n", Name, msg)
	if code == ExitUsage && cmd != nil {
		fmt.Fprintf(w, "usage: %s\nrun '%s %s --help' for flags and examples\n", cmd.usageLine(), Name, cmd.name())
	}
	return code
}

// splitArgs separates flags (with their values) from positional arguments,
// so flags may come before or after them. "--" ends the flags.
func splitArgs(fs *flag.FlagSet, args []string) (flags, pos []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // Parse reports it
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			continue
		}
		if i+1 >= len(args) {
			return nil, nil, fmt.Errorf("flag needs an argument: %s", a)
		}
		i++
		flags = append(flags, args[i])
	}
	return flags, pos, nil
}

func checkArgs(cmd *command, pos []string) error {
	min := 0
	for _, a := range cmd.args {
		if !strings.HasSuffix(a, "?") {
			min++
		}
	}
	switch {
	case len(pos) < min:
		missing := strings.TrimSuffix(cmd.args[len(pos)], "?")
		return usagef("%s: missing argument %s", cmd.name(), missing)
	case len(pos) > len(cmd.args):
		return usagef("%s: unexpected argument %q", cmd.name(), pos[len(cmd.args)])
	}
	return nil
}

// connect opens what the command needs and returns the func that closes it.
func (r *runner) connect(n need) (func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if n&needDB != 0 || n&needDBIfSet != 0 && r.cfg.DatabaseURL != "" {
		if r.cfg.DatabaseURL == "" {
			return closeAll, usagef("--database-url ($%s) is required: the audit log is in PostgreSQL", process.EnvDatabaseURL)
		}
		ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
		defer cancel()
		where := process.Redact(r.cfg.DatabaseURL)
		pool, err := pgxpool.New(ctx, r.cfg.DatabaseURL)
		if err != nil {
			return closeAll, fmt.Errorf("%w: --database-url %s: %v", process.ErrInvalidConfig, where, err)
		}
		closers = append(closers, pool.Close)
		if err := pool.Ping(ctx); err != nil {
			return closeAll, fmt.Errorf("%w at %s: %v", ErrDatabaseUnreachable, where, err)
		}
		r.store = store.New(pool, store.WithAuditKey(r.auditKey))
	}
	if n&needNATS != 0 {
		ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
		defer cancel()
		closed := make(chan struct{})
		r.natsClosed = closed
		natsOpts := []nats.Option{nats.MaxReconnects(0), nats.ClosedHandler(func(*nats.Conn) { close(closed) })}
		if n&needReconnect != 0 {
			natsOpts = append(natsOpts, nats.MaxReconnects(-1), nats.ReconnectWait(time.Second), nats.ReconnectJitter(500*time.Millisecond, time.Second))
		}
		nc, err := r.cfg.Connect(ctx, "baldur-cli", natsOpts...)
		if err != nil {
			closeAll()
			return func() {}, err
		}
		closers = append(closers, nc.Close)
		opts := []opsclient.Option{opsclient.WithApplyTimeout(r.timeout)}
		if r.store != nil {
			opts = append(opts, opsclient.WithAuditStore(r.store))
		}
		c, err := opsclient.New(ctx, nc, opts...)
		if err != nil {
			closeAll()
			return func() {}, err
		}
		r.client = c
	}
	return closeAll, nil
}

// opCtx bounds one operation: the timeout plus a margin, so the client's own
// apply timeout fires first with its clearer message.
func (r *runner) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.ctx, r.timeout+2*time.Second)
}

func defaultActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return ""
}

func commandsOf(noun string) []*command {
	var out []*command
	for _, c := range commands() {
		if c.noun == noun {
			out = append(out, c)
		}
	}
	return out
}

func findCommand(noun, verb string) *command {
	for _, c := range commands() {
		if c.noun == noun && c.verb == verb {
			return c
		}
	}
	return nil
}

func nouns() []string {
	var out []string
	for _, c := range commands() {
		if !slices.Contains(out, c.noun) {
			out = append(out, c.noun)
		}
	}
	return out
}
