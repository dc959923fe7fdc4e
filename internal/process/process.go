// Package process holds the process configuration every Baldur binary shares
// (DESIGN §3 "Process configuration"): flags with environment twins, their
// validation, the NATS connection and the slog logger.
//
// Precedence is flag > environment > default: a flag given on the command
// line wins, else its environment twin when set and not empty, else the
// default. A binary adds its own flags (with or without a twin) through
// Flags.String, Flags.Int and Flags.Duration before calling Parse.
package process

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/baldurfleet/baldur/internal/telemetry"
)

// Environment variables of the shared flags.
const (
	EnvNATSURL     = "BALDUR_NATS_URL"
	EnvNATSCreds   = "BALDUR_NATS_CREDS"
	EnvDatabaseURL = "BALDUR_DATABASE_URL"
	EnvHTTPAddr    = "BALDUR_HTTP_ADDR"
	EnvNodeID      = "BALDUR_NODE_ID"
	EnvReplicas    = "BALDUR_REPLICAS"
	EnvLogLevel    = "BALDUR_LOG_LEVEL"
	EnvLogFormat   = "BALDUR_LOG_FORMAT"
)

// Defaults of the shared flags.
const (
	DefaultNATSURL        = "nats://127.0.0.1:4222"
	DefaultReplicas       = 1
	DefaultLogLevel       = "info"
	DefaultLogFormat      = "text"
	DefaultConnectTimeout = 5 * time.Second
	// MaxNodeIDLen bounds a node id: it is a ce-source and a KV key token.
	MaxNodeIDLen = 128
)

// nodeIDPattern is what a node id may look like: it names the node in
// ce-source and in KV keys (partition leases), whose tokens allow no other
// characters.
var nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// Config is the resolved process configuration.
type Config struct {
	// NATSURL is one or more comma-separated NATS server URLs.
	NATSURL string
	// NATSCreds is the path of a NATS credentials file; empty for none.
	NATSCreds string
	// DatabaseURL is the PostgreSQL URL; binaries that need it check it is set.
	DatabaseURL string
	// HTTPAddr is where health and /metrics are served; empty for none.
	HTTPAddr string
	// NodeID names this process in ce-source and in partition leases.
	NodeID string
	// Replicas of every stream and bucket the binary creates.
	Replicas int
	// LogLevel is the minimum level logged.
	LogLevel slog.Level
	// LogFormat is text or json.
	LogFormat string
}

// Flags is a flag set with the shared flags registered and environment twins
// for any flag that declares one.
type Flags struct {
	fs   *flag.FlagSet
	envs map[string]string // flag name → environment variable

	natsURL, natsCreds, databaseURL, httpAddr, nodeID *string
	replicas                                          *int
	logLevel, logFormat                               *string
}

// NewFlags returns the flag set of binary name with the shared flags. Parse
// errors are returned, not printed with a usage and exit; -h prints the usage
// to the flag set's output and Parse returns flag.ErrHelp.
func NewFlags(name string) *Flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	f := &Flags{fs: fs, envs: map[string]string{}}
	f.natsURL = f.String("nats-url", EnvNATSURL, DefaultNATSURL, "NATS server URLs, comma separated")
	f.natsCreds = f.String("nats-creds", EnvNATSCreds, "", "NATS credentials file")
	f.databaseURL = f.String("database-url", EnvDatabaseURL, "", "PostgreSQL URL")
	f.httpAddr = f.String("http-addr", EnvHTTPAddr, "", "address of the health and /metrics endpoint (empty: none)")
	f.nodeID = f.String("node-id", EnvNodeID, "", "this node's id (default hostname-pid)")
	f.replicas = f.Int("replicas", EnvReplicas, DefaultReplicas, "replicas of streams and buckets (1, or 3 in a cluster)")
	f.logLevel = f.String("log-level", EnvLogLevel, DefaultLogLevel, "debug, info, warn or error")
	f.logFormat = f.String("log-format", EnvLogFormat, DefaultLogFormat, "text or json")
	return f
}

// FlagSet returns the underlying flag set, e.g. to set its output or usage.
func (f *Flags) FlagSet() *flag.FlagSet { return f.fs }

// String registers a string flag; env, when not empty, is its environment twin.
func (f *Flags) String(name, env, def, usage string) *string {
	p := f.fs.String(name, def, withEnv(usage, env))
	f.twin(name, env)
	return p
}

// Int registers an int flag; env, when not empty, is its environment twin.
func (f *Flags) Int(name, env string, def int, usage string) *int {
	p := f.fs.Int(name, def, withEnv(usage, env))
	f.twin(name, env)
	return p
}

// Duration registers a duration flag; env, when not empty, is its environment
// twin.
func (f *Flags) Duration(name, env string, def time.Duration, usage string) *time.Duration {
	p := f.fs.Duration(name, def, withEnv(usage, env))
	f.twin(name, env)
	return p
}

func (f *Flags) twin(name, env string) {
	if env != "" {
		f.envs[name] = env
	}
}

func withEnv(usage, env string) string {
	if env == "" {
		return usage
	}
	return usage + " ($" + env + ")"
}

// Parse parses args (without the program name), then fills every flag not
// given on the command line from its environment twin read with getenv (nil
// means os.Getenv), and validates the shared flags. Errors are one line and
// name the flag and its twin.
func (f *Flags) Parse(args []string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if f.fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected argument %q", ErrInvalidConfig, f.fs.Arg(0))
	}
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	var errs []error
	f.fs.VisitAll(func(fl *flag.Flag) {
		env, ok := f.envs[fl.Name]
		if !ok || set[fl.Name] {
			return
		}
		v := getenv(env)
		if v == "" {
			return
		}
		if err := fl.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%w: $%s=%q for --%s: %v", ErrInvalidConfig, env, v, fl.Name, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return Config{}, oneLine(err)
	}
	cfg := Config{
		NATSURL:     strings.TrimSpace(*f.natsURL),
		NATSCreds:   *f.natsCreds,
		DatabaseURL: *f.databaseURL,
		HTTPAddr:    *f.httpAddr,
		NodeID:      *f.nodeID,
		Replicas:    *f.replicas,
		LogFormat:   *f.logFormat,
	}
	if cfg.NodeID == "" {
		cfg.NodeID = DefaultNodeID()
	}
	lvl, err := ParseLevel(*f.logLevel)
	if err != nil {
		return Config{}, err
	}
	cfg.LogLevel = lvl
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// oneLine joins the lines of a joined error with "; ".
func oneLine(err error) error {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.TrimPrefix(msg, ErrInvalidConfig.Error()+": "))
}

// Validate checks the configuration and returns a one-line error naming
// every invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.NATSURL == "" {
		errs = append(errs, fmt.Errorf("--nats-url ($%s) is empty", EnvNATSURL))
	}
	for u := range strings.SplitSeq(c.NATSURL, ",") {
		if err := checkNATSURL(strings.TrimSpace(u)); err != nil && c.NATSURL != "" {
			errs = append(errs, fmt.Errorf("--nats-url ($%s): %w", EnvNATSURL, err))
		}
	}
	if c.NATSCreds != "" {
		if _, err := os.Stat(c.NATSCreds); err != nil {
			errs = append(errs, fmt.Errorf("--nats-creds ($%s): %w", EnvNATSCreds, err))
		}
	}
	if len(c.NodeID) > MaxNodeIDLen || !nodeIDPattern.MatchString(c.NodeID) {
		errs = append(errs, fmt.Errorf("--node-id ($%s) %q must be 1 to %d letters, digits, '_' or '-', starting with a letter or digit",
			EnvNodeID, c.NodeID, MaxNodeIDLen))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("--replicas ($%s) is %d; want 1 to 5 (1, or 3 in a cluster)", EnvReplicas, c.Replicas))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format ($%s) is %q; want text or json", EnvLogFormat, c.LogFormat))
	}
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(msgs, "; "))
}

func checkNATSURL(raw string) error {
	if raw == "" {
		return errors.New("has an empty URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("%q has scheme %q; want nats, tls, ws or wss", Redact(raw), u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%q has no host", Redact(raw))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q has an invalid port", Redact(raw))
		}
	}
	return nil
}

// ParseLevel parses a log level: debug, info, warn or error (any case).
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%w: --log-level ($%s) is %q; want debug, info, warn or error", ErrInvalidConfig, EnvLogLevel, s)
}

// DefaultNodeID returns hostname-pid, with characters a node id may not hold
// replaced by '-'.
func DefaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	return sanitizeNodeID(host) + "-" + strconv.Itoa(os.Getpid())
}

func sanitizeNodeID(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > MaxNodeIDLen-12 {
		b = b[:MaxNodeIDLen-12]
	}
	if len(b) == 0 || b[0] == '-' || b[0] == '_' {
		b = append([]byte("n"), b...)
	}
	return string(b)
}

// Redact hides the password of a URL with user info.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// Logger returns the process logger writing to w in cfg.LogFormat at
// cfg.LogLevel, with the node id on every record, and the trace and span ids
// on every record logged with a context that carries a span
// (telemetry.LogHandler).
func (c Config) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	var h slog.Handler
	if c.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(telemetry.NewLogHandler(h)).With(slog.String("node", c.NodeID))
}

// Connect connects to NATS as name. It gives up after the context's deadline,
// or DefaultConnectTimeout without one, with a one-line error wrapping
// ErrUnreachable. Once connected the connection reconnects for ever.
func (c Config) Connect(ctx context.Context, name string, opts ...nats.Option) (*nats.Conn, error) {
	timeout := DefaultConnectTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("%w: NATS at %s: %w", ErrUnreachable, c.redactedURLs(), context.DeadlineExceeded)
	}
	base := []nats.Option{
		nats.Name(name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}
	if c.NATSCreds != "" {
		base = append(base, nats.UserCredentials(c.NATSCreds))
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(c.NATSURL, append(base, opts...)...)
		ch <- result{nc, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("%w: NATS at %s: %v", ErrUnreachable, c.redactedURLs(), r.err)
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("%w: NATS at %s: %w", ErrUnreachable, c.redactedURLs(), ctx.Err())
	}
}

// RedactedNATSURL returns the NATS URLs with any password hidden, for logs
// and errors.
func (c Config) RedactedNATSURL() string { return c.redactedURLs() }

func (c Config) redactedURLs() string {
	parts := strings.Split(c.NATSURL, ",")
	for i, p := range parts {
		parts[i] = Redact(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}
