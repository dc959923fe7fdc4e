package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/telemetry"
	"github.com/baldurfleet/baldur/internal/topology"
)

// Defaults of Config.
const (
	// DefaultAddr is the listen address when Config.Addr is empty.
	DefaultAddr = "127.0.0.1:8080"
	// DefaultRecentEvents is how many recent fleet events the dashboard
	// keeps when Config.RecentEvents is zero.
	DefaultRecentEvents = 50
	// DefaultDLQPoll is how often the DLQ depth is read when
	// Config.DLQPoll is zero.
	DefaultDLQPoll = 5 * time.Second
	// DefaultHeartbeat is how often an idle SSE stream sends a comment so
	// that proxies keep it open, when Config.Heartbeat is zero.
	DefaultHeartbeat = 15 * time.Second
	// DefaultActor is the actor of a write without an X-Baldur-Actor
	// header.
	DefaultActor = "dashboard"
	// DefaultMaxLiveClients is how many live dashboards (SSE streams) are
	// served at once when Config.MaxLiveClients is zero; more get 503.
	DefaultMaxLiveClients = 64
	// DefaultLiveWriteTimeout bounds each write to a live dashboard when
	// Config.LiveWriteTimeout is zero: one that does not read is dropped.
	DefaultLiveWriteTimeout = 10 * time.Second
	// DefaultRequestTimeout bounds every API request but the live stream
	// when Config.RequestTimeout is zero: past it the answer is 504.
	DefaultRequestTimeout = 10 * time.Second
)

// Config configures a Server.
type Config struct {
	// Addr is the address Start listens on ("127.0.0.1:8080" when empty;
	// port 0 picks a free port, see Server.Addr).
	Addr string
	// AdminToken is the shared bearer token writes need; its writes are
	// recorded with the X-Baldur-Actor header as the actor (DefaultActor
	// without one). With neither AdminToken nor Operators every write is
	// refused with 403.
	AdminToken string
	// Operators have tokens of their own: a write made with one is recorded
	// with the operator's name as the actor, whatever X-Baldur-Actor says
	// (ParseOperatorTokens reads them from a file).
	Operators []OperatorToken
	// RecentEvents is how many recent fleet events the dashboard shows
	// (DefaultRecentEvents when zero).
	RecentEvents int
	// DLQPoll is how often the DLQ depth is read for the dashboard
	// (DefaultDLQPoll when zero).
	DLQPoll time.Duration
	// Heartbeat is the SSE keep-alive interval (DefaultHeartbeat when zero).
	Heartbeat time.Duration
	// MaxLiveClients bounds the live dashboards served at once
	// (DefaultMaxLiveClients when zero).
	MaxLiveClients int
	// LiveWriteTimeout bounds each write to a live dashboard
	// (DefaultLiveWriteTimeout when zero).
	LiveWriteTimeout time.Duration
	// RequestTimeout bounds every other API request, the fleet requests it
	// makes included (DefaultRequestTimeout when zero).
	RequestTimeout time.Duration
	// AllowedHosts are the host names (without port) a request's Host
	// header may name; others get 421, which defeats DNS rebinding against
	// a dashboard on loopback. Empty: when Addr is a loopback address or
	// "localhost", only localhost, 127.0.0.1 and ::1; else any host.
	AllowedHosts []string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Clock is the time of DLQ polls; nil is time.Now.
	Clock func() time.Time
}

// Deps are the fleet connections a Server uses.
type Deps struct {
	// JetStream reads the breaker and governance buckets and the events
	// stream. Required.
	JetStream jetstream.JetStream
	// Operator performs the writes and the DLQ and audit reads
	// (an *opsclient.Client). Required.
	Operator Operator
}

// Server is the admin HTTP API and dashboard. Create it with New, serve it
// with Start (or mount Handler), and stop it with Stop.
type Server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	live    *live
	handler http.Handler

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	http    *http.Server
	ln      net.Listener
	consume jetstream.ConsumeContext
	serveWG sync.WaitGroup

	// reconnected wakes resyncLoop after NATS reconnected.
	reconnected chan struct{}
	// superviseCancel ends resyncLoop.
	superviseCancel context.CancelFunc
	superviseDone   chan struct{}
}

// New returns a server for cfg and deps. It does no I/O: Start connects the
// live feeds and listens.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.JetStream == nil {
		return nil, fmt.Errorf("%w: Deps.JetStream is required", ErrConfig)
	}
	if deps.Operator == nil {
		return nil, fmt.Errorf("%w: Deps.Operator is required", ErrConfig)
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.RecentEvents == 0 {
		cfg.RecentEvents = DefaultRecentEvents
	}
	if cfg.DLQPoll == 0 {
		cfg.DLQPoll = DefaultDLQPoll
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	cfg.MaxLiveClients = cmp.Or(cfg.MaxLiveClients, DefaultMaxLiveClients)
	cfg.LiveWriteTimeout = cmp.Or(cfg.LiveWriteTimeout, DefaultLiveWriteTimeout)
	cfg.RequestTimeout = cmp.Or(cfg.RequestTimeout, DefaultRequestTimeout)
	if len(cfg.AllowedHosts) == 0 && loopbackAddr(cfg.Addr) {
		cfg.AllowedHosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	switch {
	case cfg.RecentEvents < 0 || cfg.RecentEvents > 1000:
		return nil, fmt.Errorf("%w: RecentEvents %d outside 0..1000", ErrConfig, cfg.RecentEvents)
	case cfg.DLQPoll < 100*time.Millisecond:
		return nil, fmt.Errorf("%w: DLQPoll %s is below 100ms", ErrConfig, cfg.DLQPoll)
	case cfg.Heartbeat < 0:
		return nil, fmt.Errorf("%w: Heartbeat %s is negative", ErrConfig, cfg.Heartbeat)
	case cfg.MaxLiveClients < 1 || cfg.MaxLiveClients > 10000:
		return nil, fmt.Errorf("%w: MaxLiveClients %d outside 1..10000", ErrConfig, cfg.MaxLiveClients)
	case cfg.LiveWriteTimeout < 100*time.Millisecond || cfg.RequestTimeout < 100*time.Millisecond:
		return nil, fmt.Errorf("%w: LiveWriteTimeout %s and RequestTimeout %s must be at least 100ms", ErrConfig, cfg.LiveWriteTimeout, cfg.RequestTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	log := cfg.Logger.With(slog.String("component", "admin"))
	s := &Server{cfg: cfg, deps: deps, log: log, live: newLive(log, cfg.RecentEvents), reconnected: make(chan struct{}, 1)}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler: the API under /api/ and the
// dashboard at /. The live parts (breaker grid, governance, events, SSE)
// show data once Start (or StartFeeds) ran.
func (s *Server) Handler() http.Handler { return s.handler }

// StartFeeds starts the live feeds without listening: the watches of
// baldur_breakers and baldur_governance (it returns once their current
// values are loaded), the tail of BALDUR_EVENTS and the DLQ poll. Use it when
// mounting Handler on a server of your own; Start calls it.
func (s *Server) StartFeeds(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return ErrStarted
	}
	if err := s.startFeedsLocked(ctx); err != nil {
		return err
	}
	s.started = true
	s.startSupervisorLocked(ctx)
	return nil
}

// startSupervisorLocked starts following the NATS connection (resyncLoop,
// superviseConn) once the feeds run.
func (s *Server) startSupervisorLocked(ctx context.Context) {
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	s.superviseCancel, s.superviseDone = cancel, done
	go func() {
		defer close(done)
		s.resyncLoop(life)
	}()
	s.superviseConn(s.deps.JetStream.Conn())
}

// stopFeedsLocked stops the watches, the tail of the events and the DLQ
// poll, and waits for them.
func (s *Server) stopFeedsLocked() {
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
	if s.consume != nil {
		s.consume.Stop()
		s.consume = nil
	}
	s.wg.Wait()
}

func (s *Server) startFeedsLocked(ctx context.Context) error {
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	fail := func(what string, err error) error {
		cancel()
		s.wg.Wait()
		if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("admin: %s: %w (start a breaker-worker, which creates the topology)", what, err)
		}
		return fmt.Errorf("admin: %s: %w", what, err)
	}
	for _, b := range []struct {
		name  string
		apply func(jetstream.KeyValueEntry)
	}{
		{topology.BucketBreakers, s.live.applyBreaker},
		{topology.BucketGovernance, s.live.applyGovernance},
	} {
		kv, err := s.deps.JetStream.KeyValue(ctx, b.name)
		if err != nil {
			return fail("bucket "+b.name, err)
		}
		if err := watchBucket(ctx, life, kv, b.apply, &s.wg); err != nil {
			return fail("watch "+b.name, err)
		}
	}
	cc, err := tailEvents(ctx, s.deps.JetStream, s.cfg.RecentEvents, s.live.addEvent)
	if err != nil {
		return fail("tail "+topology.StreamEvents, err)
	}
	s.consume = cc
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		pollDLQ(life, s.cfg.DLQPoll, s.cfg.Clock, dlqStats(s.deps.Operator), s.live.setDLQ)
	}()
	s.cancel = cancel
	return nil
}

// Start starts the live feeds (StartFeeds) and serves HTTP on cfg.Addr. An
// address that cannot be listened on (a port already taken) is an error
// wrapping ErrListen that names the address.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return ErrStarted
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("%w on %s: %w (is another process using the port? choose another with --http-addr)", ErrListen, s.cfg.Addr, err)
	}
	if err := s.startFeedsLocked(ctx); err != nil {
		_ = ln.Close()
		return err
	}
	s.ln = ln
	s.http = telemetry.NewHTTPServer(s.handler, s.log)
	s.serveWG.Add(1)
	go func() {
		defer s.serveWG.Done()
		if err := s.http.Serve(telemetry.LimitListener(ln, telemetry.MaxConnections)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin: serve", slog.Any("error", err))
		}
	}()
	s.started = true
	s.startSupervisorLocked(ctx)
	s.log.Info("admin: listening", slog.String("addr", ln.Addr().String()))
	return nil
}

// LiveClients returns how many live dashboards (GET /api/events streams)
// are connected now: a dropped one counts until its stream has ended.
func (s *Server) LiveClients() int { return s.live.clients() }

// LiveStats are figures of the live dashboards since the server was made.
type LiveStats struct {
	// Clients is LiveClients.
	Clients int
	// DroppedBehind counts the dashboards dropped because they fell 128
	// messages behind, DroppedStalled those dropped because a write did not
	// complete within Config.LiveWriteTimeout. A dashboard that went away
	// or was ended by Stop is neither.
	DroppedBehind, DroppedStalled int64
}

// LiveStats returns the live dashboards' figures; each drop is also logged
// ("admin: live dashboard dropped", with the client's address and the
// reason).
func (s *Server) LiveStats() LiveStats {
	behind, stalled := s.live.dropped()
	return LiveStats{Clients: s.live.clients(), DroppedBehind: behind, DroppedStalled: stalled}
}

// Addr returns the address the server listens on (with the port chosen when
// cfg.Addr had port 0), or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Stop stops serving (SSE streams end, other requests get until ctx ends to
// finish) and stops the live feeds. It is safe to call more than once.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return nil
	}
	s.started = false
	var err error
	s.live.closeAll() // ends the SSE streams, so Shutdown does not wait on them
	if s.superviseCancel != nil {
		s.superviseCancel()
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.http != nil {
		err = s.http.Shutdown(ctx)
		s.serveWG.Wait()
		s.http, s.ln = nil, nil
	}
	s.stopFeedsLocked()
	if s.superviseDone != nil {
		// resyncLoop takes s.mu to restart the feeds: wait for it unlocked.
		done := s.superviseDone
		s.superviseDone = nil
		s.mu.Unlock()
		<-done
		s.mu.Lock()
	}
	return err
}

// loopbackAddr reports whether addr listens on loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
