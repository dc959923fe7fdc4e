package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// CheckTimeout bounds each readiness check.
const CheckTimeout = 2 * time.Second

// Check is one readiness condition: nil when met, else an error that says
// what is missing.
type Check struct {
	// Name names the check in the /readyz answer ("nats", "topology",
	// "postgres", ...).
	Name string
	// Func runs the check; ctx is bounded by CheckTimeout.
	Func func(ctx context.Context) error
}

// NATSCheck is ready while nc is connected.
func NATSCheck(nc *nats.Conn) Check {
	return Check{Name: "nats", Func: func(context.Context) error {
		if s := nc.Status(); s != nats.CONNECTED {
			return fmt.Errorf("NATS connection is %s", strings.ToLower(s.String()))
		}
		return nil
	}}
}

// StreamsCheck is ready while every named stream exists (the topology the
// binary created at start is still there).
func StreamsCheck(js jetstream.JetStream, streams ...string) Check {
	return Check{Name: "topology", Func: func(ctx context.Context) error {
		for _, s := range streams {
			if _, err := js.Stream(ctx, s); err != nil {
				return fmt.Errorf("stream %s: %w", s, err)
			}
		}
		return nil
	}}
}

// Pinger is what PostgresCheck needs: pgxpool.Pool has it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// PostgresCheck is ready while PostgreSQL answers a ping.
func PostgresCheck(db Pinger) Check {
	return Check{Name: "postgres", Func: func(ctx context.Context) error {
		if err := db.Ping(ctx); err != nil {
			return fmt.Errorf("PostgreSQL: %w", err)
		}
		return nil
	}}
}

// Handler returns the mux of the health endpoint: /healthz answers 200 while
// the process serves HTTP at all; /readyz answers 200 when every check
// passes, else 503 with one line per failed check; /metrics serves metrics
// when it is not nil.
func Handler(metrics http.Handler, checks ...Check) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := Ready(r.Context(), checks...); err != nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, err.Error()+"\n")
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	return mux
}

// Ready runs the checks and returns nil when all pass, else an error
// wrapping ErrNotReady that names each failed check.
func Ready(ctx context.Context, checks ...Check) error {
	var failed []string
	for _, c := range checks {
		cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
		err := c.Func(cctx)
		cancel()
		if err != nil {
			failed = append(failed, c.Name+": "+err.Error())
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNotReady, strings.Join(failed, "; "))
}

// Server is a running health and metrics endpoint.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan struct{}
}

// Serve listens on addr and serves h (Handler) until Close. Errors after
// the start are logged to log.
func Serve(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: --http-addr %s: %w", ErrListen, addr, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{srv: NewHTTPServer(h, log), addr: ln.Addr(), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(LimitListener(ln, MaxConnections)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("health endpoint failed", slog.String("addr", s.addr.String()), slog.Any("error", err))
		}
	}()
	return s, nil
}

// Addr returns the address the server listens on (useful with port 0).
func (s *Server) Addr() net.Addr { return s.addr }

// Close stops the server, letting requests in flight finish for up to
// five seconds.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
}
