package breaker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
)

// ErrPermitNoReply reports a permit request sent without a reply subject (a
// publish, not a request): a permit nobody can receive would be wasted, so
// none is granted.
var ErrPermitNoReply = errors.New("breaker: permit request without a reply subject")

// Defaults of a PermitServer.
const (
	// DefaultPermitConcurrency is the number of permit requests one server
	// handles at once.
	DefaultPermitConcurrency = 4
	// DefaultPermitTimeout bounds the handling of one permit request.
	DefaultPermitTimeout = 5 * time.Second
)

// deniedReply is the answer to a request that could not be handled.
var deniedReply = []byte(`{"granted":false}`)

// PermitServer answers half-open permit requests (core NATS request/reply on
// baldur.permit.<svc>, queue group baldur-permit, so any one breaker-worker
// answers each request). A permit is granted by folding domain.PermitInput
// into the breaker with a compare-and-set through StateStore.Update, so the
// number of permits of a half-open period is exact fleet-wide (DESIGN §7.4);
// an OPEN breaker past recovery_at is moved to HALF_OPEN by the first request,
// which gets the period's first permit.
//
// A malformed request is answered {"granted":false} and published as a
// rejected event of kind permit; it never stops the server.
type PermitServer struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	store *StateStore
	cfg   ConfigSource
	gov   GovernanceSource

	clock       func() time.Time
	log         *slog.Logger
	source      string
	concurrency int
	timeout     time.Duration

	mu      sync.Mutex
	subs    []*nats.Subscription
	ctx     context.Context
	cancel  context.CancelFunc
	started bool

	requests, granted, rejected, failed atomic.Uint64
}

// PermitOption configures a PermitServer.
type PermitOption func(*PermitServer)

// WithPermitClock sets the clock of the fold (default time.Now).
func WithPermitClock(now func() time.Time) PermitOption {
	return func(s *PermitServer) {
		if now != nil {
			s.clock = now
		}
	}
}

// WithPermitLogger sets the logger (default: none).
func WithPermitLogger(l *slog.Logger) PermitOption {
	return func(s *PermitServer) {
		if l != nil {
			s.log = l
		}
	}
}

// WithPermitSource sets the ce-source of the rejected events the server
// publishes: the node id.
func WithPermitSource(node string) PermitOption {
	return func(s *PermitServer) { s.source = node }
}

// WithPermitConcurrency sets how many requests the server handles at once
// (default DefaultPermitConcurrency): one queue subscription each.
func WithPermitConcurrency(n int) PermitOption {
	return func(s *PermitServer) {
		if n > 0 {
			s.concurrency = n
		}
	}
}

// WithPermitTimeout bounds the handling of one request (default
// DefaultPermitTimeout).
func WithPermitTimeout(d time.Duration) PermitOption {
	return func(s *PermitServer) {
		if d > 0 {
			s.timeout = d
		}
	}
}

// NewPermitServer returns a server answering permit requests on nc, writing
// breakers through store under the config and governance of cfg and gov.
func NewPermitServer(nc *nats.Conn, store *StateStore, cfg ConfigSource, gov GovernanceSource, opts ...PermitOption) (*PermitServer, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("breaker: permit server: %w", err)
	}
	s := &PermitServer{
		nc: nc, js: js, store: store, cfg: cfg, gov: gov,
		clock:       time.Now,
		log:         slog.New(slog.DiscardHandler),
		concurrency: DefaultPermitConcurrency,
		timeout:     DefaultPermitTimeout,
	}
	for _, opt := range opts {
		opt(s)
	}
	return s, nil
}

// Start subscribes and returns once the server is registered with NATS.
// Requests are handled under a context derived from ctx: cancelling it aborts
// the requests in hand; Stop ends the server gracefully.
func (s *PermitServer) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("breaker: permit server already started")
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	for range s.concurrency {
		sub, err := s.nc.QueueSubscribe(events.FilterPermit, events.PermitQueueGroup, s.handle)
		if err != nil {
			s.unsubscribeLocked()
			return fmt.Errorf("breaker: subscribe to %s: %w", events.FilterPermit, err)
		}
		s.subs = append(s.subs, sub)
	}
	fctx, cancel := context.WithTimeout(ctx, s.timeout) // Flush needs a deadline
	defer cancel()
	if err := s.nc.FlushWithContext(fctx); err != nil {
		s.unsubscribeLocked()
		return fmt.Errorf("breaker: permit server: flush subscriptions: %w", err)
	}
	s.started = true
	return nil
}

func (s *PermitServer) unsubscribeLocked() {
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
	s.subs = nil
	s.cancel()
}

// Stop drains the subscriptions: requests already received are answered, no
// new one is taken. It returns when the last one was handled (or after
// twice the request timeout). It may be called more than once.
func (s *PermitServer) Stop() {
	s.mu.Lock()
	subs := s.subs
	s.subs = nil
	s.mu.Unlock()
	if len(subs) == 0 {
		return
	}
	deadline := time.NewTimer(2 * s.timeout)
	defer deadline.Stop()
	var closed []<-chan nats.SubStatus
	for _, sub := range subs {
		c := sub.StatusChanged(nats.SubscriptionClosed)
		if err := sub.Drain(); err != nil {
			continue // the connection is closed: nothing left to answer
		}
		closed = append(closed, c)
	}
	for _, c := range closed {
		select {
		case <-c:
		case <-deadline.C:
			s.log.Warn("breaker: permit server stopped before its last requests were answered")
		}
	}
	s.cancel()
}

// PermitStats counts what a PermitServer did.
type PermitStats struct {
	// Requests is the number of requests received.
	Requests uint64
	// Granted is the number of permits granted.
	Granted uint64
	// Rejected is the number of malformed requests.
	Rejected uint64
	// Failed is the number of requests that could not be folded (the KV
	// store failed or kept conflicting); they were answered not granted.
	Failed uint64
}

// Stats returns the server's counters.
func (s *PermitServer) Stats() PermitStats {
	return PermitStats{
		Requests: s.requests.Load(),
		Granted:  s.granted.Load(),
		Rejected: s.rejected.Load(),
		Failed:   s.failed.Load(),
	}
}

// handle answers one request.
func (s *PermitServer) handle(m *nats.Msg) {
	s.requests.Add(1)
	svc, req, err := s.decode(m)
	if err != nil {
		s.reject(m, err)
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	now := s.clock()
	b, res, err := s.store.Update(ctx, svc, func(b domain.Breaker) (domain.Breaker, domain.Result) {
		return b.Apply(domain.PermitInput(req.Node), domain.Env{Now: now, Config: s.cfg.Config(svc), Governance: s.gov.Governance()})
	})
	if err != nil {
		s.failed.Add(1)
		s.log.WarnContext(ctx, "breaker: permit request not folded; answered not granted",
			slog.String("service", svc), slog.String("node", req.Node), slog.Any("error", err))
		s.respond(m, deniedReply)
		return
	}
	if res.Granted {
		s.granted.Add(1)
	}
	reply, err := json.Marshal(events.PermitReply{Granted: res.Granted, State: b.State, Generation: b.Generation})
	if err != nil { // cannot happen: the reply has no field that fails to encode
		reply = deniedReply
	}
	s.log.DebugContext(ctx, "breaker: permit request answered", slog.String("service", svc),
		slog.String("node", req.Node), slog.Bool("granted", res.Granted), slog.String("state", string(b.State)),
		slog.Uint64("generation", b.Generation))
	s.respond(m, reply)
}

// decode reads the service from the subject and the request from the body.
func (s *PermitServer) decode(m *nats.Msg) (string, events.PermitRequest, error) {
	subj, err := events.ParseSubject(m.Subject)
	if err != nil {
		return "", events.PermitRequest{}, err
	}
	if subj.Kind != events.SubjectPermit {
		return "", events.PermitRequest{}, fmt.Errorf("%w: %q is not a permit subject", events.ErrInvalidSubject, m.Subject)
	}
	req, err := events.DecodePermitRequest(m.Data)
	if err != nil {
		return "", events.PermitRequest{}, err
	}
	if m.Reply == "" {
		return "", events.PermitRequest{}, fmt.Errorf("%w: %s from node %q", ErrPermitNoReply, subj.Service, req.Node)
	}
	return subj.Service, req, nil
}

// reject answers a malformed request not granted and publishes it as a
// rejected event.
func (s *PermitServer) reject(m *nats.Msg, cause error) {
	defer s.rejected.Add(1) // counted once published, so a count seen means an event stored
	s.respond(m, deniedReply)
	r := events.NewRejected(m.Subject, m.Header, len(m.Data), cause, s.clock())
	r.Kind = events.RejectedPermit
	log := s.log.With(slog.String("subject", r.Subject), slog.String("reason", r.Reason))
	log.Warn("breaker: permit request rejected")
	subj, err := events.RejectedSubject(r.Kind)
	if err == nil {
		var msg *nats.Msg
		msg, err = events.NewMsg(subj, events.NewEnvelopeRandomID(events.TypeRejected, s.source, r.At), r)
		if err == nil {
			ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
			defer cancel()
			_, err = s.js.PublishMsg(ctx, msg)
		}
	}
	if err != nil {
		log.Error("breaker: rejected permit request not published", slog.Any("error", err))
	}
}

func (s *PermitServer) respond(m *nats.Msg, data []byte) {
	if m.Reply == "" {
		return
	}
	if err := m.Respond(data); err != nil {
		s.log.Warn("breaker: permit reply not sent", slog.String("subject", m.Subject), slog.Any("error", err))
	}
}
