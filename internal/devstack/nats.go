package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// RandomPort asks for a port chosen by the system, as nats-server's -1.
const RandomPort = server.RANDOM_PORT

// DefaultNATSPort is the port a server listens on when NATSOptions.Port is 0.
const DefaultNATSPort = server.DEFAULT_PORT

// defaultReadyTimeout bounds a server's (or a cluster's) start-up when the
// context has no deadline.
const defaultReadyTimeout = 30 * time.Second

// NATSOptions configure StartNATS.
type NATSOptions struct {
	// Host is the client listen address; empty means 127.0.0.1.
	Host string
	// Port is the client port: 0 means DefaultNATSPort (4222), RandomPort
	// lets the system choose (for tests).
	Port int
	// StoreDir is the directory of JetStream's file storage. Required.
	StoreDir string
	// ServerName names the server; empty lets nats-server choose.
	ServerName string
	// Logger receives the server's log; nil discards it.
	Logger *slog.Logger
	// Configure, when set, adjusts the nats-server options last, before the
	// server is created.
	Configure func(*server.Options)
}

// NATS is an embedded nats-server with JetStream.
type NATS struct {
	srv *server.Server
}

// StartNATS starts an embedded nats-server with JetStream on file storage and
// returns once it accepts connections, or ctx ends (30 seconds when ctx has no
// deadline).
func StartNATS(ctx context.Context, opts NATSOptions) (*NATS, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("devstack: NATSOptions.StoreDir is required for JetStream file storage")
	}
	o := &server.Options{
		ServerName: opts.ServerName,
		Host:       orDefault(opts.Host, "127.0.0.1"),
		Port:       opts.Port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoSigs:     true,
	}
	if opts.Configure != nil {
		opts.Configure(o)
	}
	srv, err := startServer(ctx, o, opts.Logger)
	if err != nil {
		return nil, err
	}
	return &NATS{srv: srv}, nil
}

// ClientURL is the URL clients connect to.
func (n *NATS) ClientURL() string { return n.srv.ClientURL() }

// Server is the embedded server, for inspection.
func (n *NATS) Server() *server.Server { return n.srv }

// Shutdown stops the server and waits until it has stopped.
func (n *NATS) Shutdown() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// startServer creates and starts a server, and waits until it listens.
func startServer(ctx context.Context, o *server.Options, logger *slog.Logger) (*server.Server, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultReadyTimeout)
		defer cancel()
	}
	srv, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("devstack: configure nats-server: %w", err)
	}
	log := newServerLog(logger)
	srv.SetLoggerV2(log, false, false, false)
	srv.Start()
	if err := waitListening(ctx, srv, log); err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, err
	}
	return srv, nil
}

// waitListening waits until srv accepts client (and route) connections, it
// reports a fatal error (such as a port in use), or ctx ends.
func waitListening(ctx context.Context, srv *server.Server, log *serverLog) error {
	for {
		if srv.ReadyForConnections(50 * time.Millisecond) {
			return nil
		}
		if err := log.fatal(); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrNATSNotReady, serverLabel(srv), err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %s does not accept connections: %w", ErrNATSNotReady, serverLabel(srv), ctx.Err())
		}
	}
}

func serverLabel(srv *server.Server) string {
	if name := srv.Name(); name != "" {
		return "server " + name
	}
	return "server"
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// serverLog adapts nats-server's logger to slog and remembers the first fatal
// error, which nats-server reports (for instance a port in use) without
// stopping.
type serverLog struct {
	log *slog.Logger

	mu        sync.Mutex
	fatalErr  error
	fatalSeen bool
}

func newServerLog(l *slog.Logger) *serverLog {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &serverLog{log: l}
}

func (l *serverLog) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalErr
}

// Noticef logs at info level.
func (l *serverLog) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }

// Warnf logs at warn level.
func (l *serverLog) Warnf(format string, v ...any) { l.log.Warn(fmt.Sprintf(format, v...)) }

// Errorf logs at error level.
func (l *serverLog) Errorf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }

// Debugf logs at debug level.
func (l *serverLog) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }

// Tracef logs at debug level.
func (l *serverLog) Tracef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }

// Fatalf logs at error level and records the error; it does not exit.
func (l *serverLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg, slog.Bool("fatal", true))
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.fatalSeen {
		l.fatalSeen, l.fatalErr = true, errors.New(msg)
	}
}

// freePorts returns n distinct free TCP ports on host, held open together
// while they are chosen.
func freePorts(host string, n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("devstack: find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
