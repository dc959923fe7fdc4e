package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/store"
)

// Engine defaults.
const (
	// DefaultLeaseTTL is how long a service's replay lease lasts without
	// renewal: a dead replayer's service is taken over after at most this.
	DefaultLeaseTTL = 30 * time.Second
	// DefaultRequestTimeout bounds one replay delivery when EngineConfig
	// names no timeout.
	DefaultRequestTimeout = 5 * time.Second
	// DefaultPublishTimeout bounds waiting for the acks of the events of one
	// batch.
	DefaultPublishTimeout = 5 * time.Second
)

// Reasons given in replay events.
const (
	// ReasonNoReplayHandler is the reason of the failed event published when
	// nobody serves baldur.replay.<svc>.
	ReasonNoReplayHandler = "no_replay_handler"
	// ReasonMaxRetriesExhausted, ReasonNotRetryable and ReasonForceClose say
	// why an entry was escalated to requires_review.
	ReasonMaxRetriesExhausted = "max_retries_exhausted"
	ReasonNotRetryable        = "not_retryable"
	ReasonForceClose          = "force_close"
)

// BreakerView is the local, watched view of the fleet that the engine
// consults: the breaker before every item, governance before every batch, the
// service's config for its rate limit and auto_replay. FleetView adapts a
// fleetstate.View.
type BreakerView interface {
	// Breaker returns the service's breaker state and generation, and false
	// when the service has no breaker.
	Breaker(svc string) (state domain.State, generation uint64, ok bool)
	// Config returns the service's effective config.
	Config(svc string) domain.Config
	// Governance returns the fleet's governance state.
	Governance() domain.Governance
}

// EngineConfig configures an Engine. Zero fields take their defaults.
type EngineConfig struct {
	// Node is this worker's id: the lease holder and the ce-source of every
	// message the engine sends. Required.
	Node string
	// LeaseTTL is the replay lease's lifetime; DefaultLeaseTTL when zero.
	LeaseTTL time.Duration
	// RenewEvery is how often the lease is renewed while a drain runs;
	// LeaseTTL/3 when zero. It also bounds a wait for the next due entry, so
	// that breaker and governance are looked at again.
	RenewEvery time.Duration
	// RequestTimeout bounds one delivery; DefaultRequestTimeout when zero. A
	// delivery that times out is a failed, retryable attempt.
	RequestTimeout time.Duration
	// PublishTimeout bounds waiting for event acks; DefaultPublishTimeout when
	// zero.
	PublishTimeout time.Duration
	// Batch sizes the claims; domain.DefaultBatchSizing when zero.
	Batch domain.BatchSizing
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// After waits on the clock; time.After when nil. Retry waits, lease
	// renewal and the rate limit use it.
	After func(time.Duration) <-chan time.Time
	// Jitter returns a random value in [0, 1) for the retry backoff;
	// math/rand/v2's Float64 when nil.
	Jitter func() float64
	// Logger receives warnings the engine cannot return; slog.Default when nil.
	Logger *slog.Logger
}

func (c EngineConfig) withDefaults() (EngineConfig, error) {
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.RenewEvery == 0 {
		c.RenewEvery = c.LeaseTTL / 3
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.Batch == (domain.BatchSizing{}) {
		c.Batch = domain.DefaultBatchSizing()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.After == nil {
		c.After = time.After
	}
	if c.Jitter == nil {
		c.Jitter = rand.Float64
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	var errs []error
	if c.Node == "" {
		errs = append(errs, errors.New("node is empty"))
	}
	if c.LeaseTTL < 0 || c.RenewEvery <= 0 || c.RenewEvery >= c.LeaseTTL {
		errs = append(errs, fmt.Errorf("renew_every %s must be positive and below lease_ttl %s", c.RenewEvery, c.LeaseTTL))
	}
	if c.RequestTimeout < 0 || c.PublishTimeout < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	if err := c.Batch.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("%w: %w", ErrInvalidEngineConfig, err)
	}
	return c, nil
}

// ReplayOptions says why and how a drain runs.
type ReplayOptions struct {
	// Trigger is events.BatchTriggerCircuitClose (the default),
	// BatchTriggerOperator or BatchTriggerContinuous.
	Trigger string
	// ForceClose escalates every failed attempt to requires_review at once:
	// the drain follows an operator's force-close (seed).
	ForceClose bool
	// Actor is the operator who asked, if one did; it is carried by the
	// events and the audit records.
	Actor string
	// MaxItems stops the drain after this many attempted entries; 0 drains
	// the whole backlog.
	MaxItems int
}

// StopReason says why a drain ended.
type StopReason string

// Stop reasons.
const (
	// StopDrained: the service has no pending entry left.
	StopDrained StopReason = "drained"
	// StopDone: every entry chosen for ReplayEntries was claimed or found
	// not claimable.
	StopDone StopReason = "done"
	// StopMaxItems: ReplayOptions.MaxItems entries were attempted.
	StopMaxItems StopReason = "max_items"
	// StopInflight: another worker holds the service's replay lease.
	StopInflight StopReason = "inflight"
	// StopGovernance: governance refused the next batch.
	StopGovernance StopReason = "governance_blocked"
	// StopBreakerOpen: the breaker is no longer closed in the local view.
	StopBreakerOpen StopReason = "breaker_not_closed"
	// StopNoResponders: nobody serves baldur.replay.<svc>.
	StopNoResponders StopReason = "no_responders"
	// StopLeaseLost: the lease was lost (fencing); the drain stopped writing.
	StopLeaseLost StopReason = "lease_lost"
	// StopCanceled: the context ended, or the drain failed with an error.
	StopCanceled StopReason = "canceled"
)

// ReplayResult is the outcome of one drain (the seed's BatchReplayResult).
// Total = Success + Failed + Skipped; Escalated ≤ Failed.
type ReplayResult struct {
	Service string
	Trigger string
	// Total is the number of entries claimed.
	Total int
	// Success counts entries that became replayed.
	Success int
	// Failed counts attempts that failed (retried later or escalated).
	Failed int
	// Skipped counts claimed entries that were not attempted, or whose
	// outcome was not recorded (a stop mid-batch, no responders, a lost
	// lease): they are pending again without an attempt spent.
	Skipped int
	// Escalated counts failures that went to requires_review.
	Escalated int
	// Batches is the number of claims that returned entries.
	Batches int
	// GovernanceBlocked and GovernanceBlockReason report a governance block.
	GovernanceBlocked     bool
	GovernanceBlockReason string
	// InflightSkipped reports that another worker held the service's lease.
	InflightSkipped bool
	// Stop says why the drain ended.
	Stop StopReason
	// Domains lists the failure domains of the entries attempted.
	Domains   []string
	StartedAt time.Time
	EndedAt   time.Time
}

// Engine replays a service's dead letters: under the service's lease, in
// adaptive batches, checking governance and the breaker as it goes (DESIGN
// §5). It is safe for concurrent use; drains of different services run in
// parallel, and the lease keeps one drain per service fleet-wide.
type Engine struct {
	store *store.Store
	nc    *nats.Conn
	js    jetstream.JetStream
	view  BreakerView
	cfg   EngineConfig
	log   *slog.Logger

	mu sync.Mutex
	// draining holds the services this engine drains now: the store gives
	// the same holder the lease again (fencing off its older token), so two
	// local drains of one service must be refused here.
	draining map[string]struct{}
}

// NewEngine returns an engine over the store, delivering on nc, publishing
// events on js and consulting view.
func NewEngine(st *store.Store, nc *nats.Conn, js jetstream.JetStream, view BreakerView, cfg EngineConfig) (*Engine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if st == nil || nc == nil || js == nil || view == nil {
		return nil, fmt.Errorf("%w: store, connection, JetStream and view are required", ErrInvalidEngineConfig)
	}
	return &Engine{store: st, nc: nc, js: js, view: view, cfg: cfg, draining: make(map[string]struct{}),
		log: cfg.Logger.With(slog.String("component", "replay-engine"), slog.String("node", cfg.Node))}, nil
}

// ReplayOnClose drains the service's pending dead letters (the seed's
// replay_on_circuit_close): it takes the service's lease — when another
// worker holds it the result reports InflightSkipped and nothing is
// delivered — renews it while draining and releases it at the end, which
// puts any entry still claimed back to pending. It returns when the service
// has no pending entry left (waiting for entries whose retry is not yet due),
// or when it must stop: governance refuses a batch (an event and an audit
// record say so), the breaker is no longer closed in the local view (checked
// before every item), nobody answers replays, the lease is lost, or ctx ends.
// One batch_completed event summarises the drain.
//
// The error is nil when the drain ended for one of the reasons of
// ReplayResult.Stop other than StopCanceled and StopLeaseLost; a lost lease
// is an error wrapping store.ErrLeaseLost.
func (e *Engine) ReplayOnClose(ctx context.Context, svc string, opts ReplayOptions) (ReplayResult, error) {
	return e.replay(ctx, svc, nil, opts)
}

var _ Replayer = (*Engine)(nil)

// ReplayEntries replays the chosen entries of svc now, on an operator's
// request (DLQ endpoints replay and replay_batch): under the service's lease
// and within governance and the breaker, like a drain, but only the given
// entries, each attempted at most once, whether pending, requires_review or
// reviewing. Entries in another status, or held by another claimer, are left
// alone. Failures follow the retry policy (opts.ForceClose escalates them at
// once). The result's Stop is StopDone when every chosen entry was attempted.
// Gate says whether a replay of svc would start now, as a drain's first
// gate would decide: governance first, then the breaker in the local view.
// It publishes and audits nothing.
func (e *Engine) Gate(svc string) (StopReason, string) {
	if dec := e.view.Governance().CheckReplay(); !dec.Allowed {
		return StopGovernance, dec.Reason
	}
	if st, _, ok := e.view.Breaker(svc); ok && st != domain.StateClosed {
		return StopBreakerOpen, "the breaker of " + svc + " is not closed"
	}
	return "", ""
}

func (e *Engine) ReplayEntries(ctx context.Context, svc string, ids []string, opts ReplayOptions) (ReplayResult, error) {
	if opts.Trigger == "" {
		opts.Trigger = events.BatchTriggerOperator
	}
	return e.replay(ctx, svc, slices.Clone(ids), opts)
}

// replay runs a drain of svc under its lease: of the whole backlog when ids is
// nil, else of those entries only.
func (e *Engine) replay(ctx context.Context, svc string, ids []string, opts ReplayOptions) (ReplayResult, error) {
	if opts.Trigger == "" {
		opts.Trigger = events.BatchTriggerCircuitClose
	}
	if err := events.ValidateServiceName(svc); err != nil {
		return ReplayResult{}, fmt.Errorf("replay %q: %w", svc, err)
	}
	switch {
	case !slices.Contains([]string{events.BatchTriggerCircuitClose, events.BatchTriggerOperator, events.BatchTriggerContinuous}, opts.Trigger):
		return ReplayResult{}, fmt.Errorf("replay %s: %w: trigger %q", svc, ErrInvalidEngineConfig, opts.Trigger)
	case opts.MaxItems < 0:
		return ReplayResult{}, fmt.Errorf("replay %s: %w: max_items %d is negative", svc, ErrInvalidEngineConfig, opts.MaxItems)
	}
	res := ReplayResult{Service: svc, Trigger: opts.Trigger, StartedAt: e.cfg.Now().UTC()}
	if !e.begin(svc) {
		res.InflightSkipped, res.Stop = true, StopInflight
		e.finish(ctx, &res, opts)
		return res, nil
	}
	defer e.end(svc)

	lease, err := e.store.AcquireLease(ctx, svc, e.cfg.Node, e.cfg.LeaseTTL, e.cfg.Now())
	if errors.Is(err, store.ErrLeaseHeld) {
		res.InflightSkipped, res.Stop = true, StopInflight
		e.finish(ctx, &res, opts)
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("replay %s: %w", svc, err)
	}
	// A predecessor that died left its claims replaying under a token that is
	// no longer current: put them back now rather than at the watchdog's
	// next tick.
	if _, err := e.store.RescueExpired(ctx, e.cfg.Now()); err != nil {
		e.log.WarnContext(ctx, "rescue expired claims", slog.String("service", svc), slog.Any("error", err))
	}

	dctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { e.renew(dctx, cancel, svc, lease.Token) })
	d := &drain{e: e, svc: svc, token: lease.Token, opts: opts, res: &res, ids: ids}
	runErr := d.run(dctx)
	cause := context.Cause(dctx)
	cancel(nil)
	wg.Wait()

	switch {
	case errors.Is(runErr, store.ErrLeaseLost) || errors.Is(cause, store.ErrLeaseLost):
		res.Stop = StopLeaseLost
		if runErr == nil || !errors.Is(runErr, store.ErrLeaseLost) {
			runErr = cause
		}
	case runErr != nil:
		res.Stop = StopCanceled
	}
	if res.Stop != StopLeaseLost {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.PublishTimeout)
		if err := e.store.ReleaseLease(rctx, svc, lease.Token, e.cfg.Now()); err != nil && !errors.Is(err, store.ErrLeaseLost) {
			e.log.WarnContext(ctx, "release replay lease", slog.String("service", svc), slog.Any("error", err))
		}
		rcancel()
	}
	e.finish(ctx, &res, opts)
	if runErr != nil {
		return res, fmt.Errorf("replay %s: %w", svc, runErr)
	}
	return res, nil
}

// Draining reports whether this engine is draining the service now.
func (e *Engine) Draining(svc string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.draining[svc]
	return ok
}

func (e *Engine) begin(svc string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.draining[svc]; ok {
		return false
	}
	e.draining[svc] = struct{}{}
	return true
}

func (e *Engine) end(svc string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.draining, svc)
}

// renew renews the lease every RenewEvery until ctx ends. A lost lease
// cancels the drain at once with a cause wrapping store.ErrLeaseLost; other
// errors are logged and retried at the next tick (fencing keeps writes safe
// if the lease expires meanwhile).
func (e *Engine) renew(ctx context.Context, cancel context.CancelCauseFunc, svc string, token int64) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.cfg.After(e.cfg.RenewEvery):
		}
		_, err := e.store.RenewLease(ctx, svc, token, e.cfg.LeaseTTL, e.cfg.Now())
		switch {
		case err == nil:
		case errors.Is(err, store.ErrLeaseLost):
			cancel(err)
			return
		case ctx.Err() != nil:
			return
		default:
			e.log.WarnContext(ctx, "renew replay lease", slog.String("service", svc), slog.Any("error", err))
		}
	}
}

// finish stamps the result and publishes its batch_completed event.
func (e *Engine) finish(ctx context.Context, res *ReplayResult, opts ReplayOptions) {
	res.EndedAt = e.cfg.Now().UTC()
	if res.EndedAt.Before(res.StartedAt) {
		res.EndedAt = res.StartedAt
	}
	slices.Sort(res.Domains)
	ev := events.ReplayBatchEvent{
		Service: res.Service, Trigger: res.Trigger, Actor: opts.Actor,
		Total: res.Total, SuccessCount: res.Success, FailedCount: res.Failed, SkippedCount: res.Skipped,
		EscalatedCount: res.Escalated, Batches: res.Batches,
		GovernanceBlocked: res.GovernanceBlocked, GovernanceBlockReason: res.GovernanceBlockReason,
		InflightSkipped: res.InflightSkipped, PriorityUsed: true, DomainsProcessed: res.Domains,
		StartedAt: res.StartedAt, At: res.EndedAt,
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.PublishTimeout)
	defer cancel()
	if err := e.publish(pctx, res.Service, events.ReplayBatchCompleted, ev, res.EndedAt); err != nil {
		e.log.WarnContext(ctx, "publish batch_completed", slog.String("service", res.Service), slog.Any("error", err))
	}
}

// eventMsg builds a replay event of the service.
func (e *Engine) eventMsg(svc string, kind events.ReplayEventKind, payload any, at time.Time) (*nats.Msg, events.Envelope, error) {
	subj, err := events.ReplayEventSubject(svc, kind)
	if err != nil {
		return nil, events.Envelope{}, err
	}
	env := events.NewEnvelopeRandomID(kind.Type(), e.cfg.Node, at)
	msg, err := events.NewMsg(subj, env, payload)
	return msg, env, err
}

// publish publishes a replay event and waits for its ack.
func (e *Engine) publish(ctx context.Context, svc string, kind events.ReplayEventKind, payload any, at time.Time) error {
	msg, _, err := e.eventMsg(svc, kind, payload, at)
	if err != nil {
		return fmt.Errorf("%w: %s of %s: %w", ErrEventPublish, kind, svc, err)
	}
	if _, err := e.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("%w: %s of %s: %w", ErrEventPublish, kind, svc, err)
	}
	return nil
}

// drain is one ReplayOnClose run under a lease.
type drain struct {
	e       *Engine
	svc     string
	token   int64
	opts    ReplayOptions
	res     *ReplayResult
	limiter *limiter
	pending []jetstream.PubAckFuture
	// ids, when not nil, are the only entries this drain replays (an
	// operator's choice), each claimed once.
	ids []string
}

// run claims and replays batches until the backlog is empty or the drain must
// stop; it sets res.Stop.
func (d *drain) run(ctx context.Context) error {
	e := d.e
	sizer, err := domain.NewBatchSizer(e.cfg.Batch)
	if err != nil {
		return err
	}
	d.limiter = newLimiter(e.view.Config(d.svc).ReplayRateLimit, e.cfg.Now, e.cfg.After)
	attempted := 0
	for {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		if d.opts.MaxItems > 0 && attempted >= d.opts.MaxItems {
			d.res.Stop = StopMaxItems
			return nil
		}
		if stop, err := d.gate(ctx); stop {
			return err
		}
		size := sizer.Size()
		if d.opts.MaxItems > 0 {
			size = min(size, d.opts.MaxItems-attempted)
		}
		batch, err := d.claim(ctx, size)
		if err != nil {
			return err
		}
		if len(batch) == 0 && d.ids != nil {
			d.res.Stop = StopDone
			return nil
		}
		if len(batch) == 0 {
			next, ok, err := e.store.NextAttemptAt(ctx, d.svc)
			if err != nil {
				return err
			}
			if !ok {
				d.res.Stop = StopDrained
				return nil
			}
			if wait := next.Sub(e.cfg.Now()); wait > 0 {
				select {
				case <-ctx.Done():
					return context.Cause(ctx)
				case <-e.cfg.After(min(wait, e.cfg.RenewEvery)):
				}
			}
			continue
		}
		d.res.Batches++
		d.res.Total += len(batch)
		processed, failed, stop, err := d.batch(ctx, batch)
		attempted += processed
		sizer = sizer.Next(processed, failed)
		if err != nil {
			return err
		}
		if stop != "" {
			d.res.Stop = stop
			return nil
		}
	}
}

// gate checks governance and the breaker before a batch. It reports whether
// the drain must stop, having set res.Stop; a governance block is published
// and audited (blocked's error, if any, is returned).
func (d *drain) gate(ctx context.Context) (bool, error) {
	if dec := d.e.view.Governance().CheckReplay(); !dec.Allowed {
		d.res.GovernanceBlocked, d.res.GovernanceBlockReason, d.res.Stop = true, dec.Reason, StopGovernance
		return true, d.blocked(ctx, dec)
	}
	if !d.closed() {
		d.res.Stop = StopBreakerOpen
		return true, nil
	}
	return false, nil
}

// claim takes the next batch of at most size entries: due pending entries of
// the service, or the next of the chosen ones.
func (d *drain) claim(ctx context.Context, size int) ([]domain.DLQEntry, error) {
	if d.ids == nil {
		return d.e.store.ClaimBatch(ctx, d.svc, d.token, size, d.e.cfg.Now())
	}
	if len(d.ids) == 0 {
		return nil, nil
	}
	next := d.ids[:min(size, len(d.ids))]
	d.ids = d.ids[len(next):]
	batch, err := d.e.store.ClaimEntries(ctx, d.svc, d.token, next, d.e.cfg.Now())
	if err != nil || len(batch) > 0 || len(d.ids) == 0 {
		return batch, err
	}
	// None of these could be claimed (another status, or held elsewhere):
	// go on with the rest of the chosen entries.
	return d.claim(ctx, size)
}

// closed reports whether the breaker is closed in the local view. A service
// without breaker state has never tripped: its breaker is closed.
func (d *drain) closed() bool {
	st, _, ok := d.e.view.Breaker(d.svc)
	return !ok || st == domain.StateClosed
}

// batch replays the claimed entries in order. It returns how many were
// attempted and how many of those failed, and why it stopped early. Entries
// it does not attempt stay replaying under the lease until the lease's
// release puts them back to pending.
func (d *drain) batch(ctx context.Context, batch []domain.DLQEntry) (processed, failed int, stop StopReason, err error) {
	var ok []domain.DLQEntry
	tcs := d.e.traceContexts(ctx, batch)
	defer func() {
		// Completions are written once per batch, in one statement; they
		// must land before the lease is released.
		ferr := d.complete(ctx, ok)
		if err == nil {
			err = ferr
		}
		d.flushEvents(ctx)
	}()
	for i, entry := range batch {
		if cerr := context.Cause(ctx); cerr != nil {
			d.res.Skipped += len(batch) - i
			return processed, failed, "", cerr
		}
		if !d.closed() {
			d.res.Skipped += len(batch) - i
			return processed, failed, StopBreakerOpen, nil
		}
		if werr := d.limiter.wait(ctx); werr != nil {
			d.res.Skipped += len(batch) - i
			return processed, failed, "", context.Cause(ctx)
		}
		out, derr := d.e.deliver(ctx, entry, tcs[entry.ID])
		if derr != nil {
			d.res.Skipped += len(batch) - i
			if cerr := context.Cause(ctx); cerr != nil {
				derr = cerr
			}
			return processed, failed, "", derr
		}
		if !slices.Contains(d.res.Domains, string(entry.Domain)) {
			d.res.Domains = append(d.res.Domains, string(entry.Domain))
		}
		if out.Result == domain.AttemptOK {
			ok = append(ok, entry)
			processed++
			continue
		}
		settled, serr := d.e.store.Settle(ctx, entry.ID, d.token, domain.Attempt{
			Result: out.Result, Error: out.Error, ForceClose: d.opts.ForceClose,
			At: d.e.cfg.Now(), Jitter: d.e.cfg.Jitter(),
		})
		if serr != nil {
			d.res.Skipped += len(batch) - i
			return processed, failed, "", serr
		}
		if out.Result == domain.AttemptNoResponders {
			d.res.Skipped += len(batch) - i
			d.itemEvent(ctx, events.ReplayFailed, entry, settled, out, ReasonNoReplayHandler)
			d.e.log.WarnContext(ctx, "no replay handler: nobody serves the replay subject; drain stopped",
				slog.String("service", d.svc), slog.String("entry", entry.ID))
			return processed, failed, StopNoResponders, nil
		}
		processed++
		failed++
		d.res.Failed++
		if settled.Entry.Status == domain.DLQRequiresReview {
			d.res.Escalated++
			d.itemEvent(ctx, events.ReplayEscalated, entry, settled, out, escalationReason(settled.Outcome.Escalation))
		} else {
			d.itemEvent(ctx, events.ReplayFailed, entry, settled, out, "")
		}
	}
	return processed, failed, "", nil
}

// complete marks the entries the service answered ok for as replayed, in one
// fenced statement, and publishes their completed events. Entries the
// statement did not complete (the lease was lost meanwhile) count as skipped:
// their next holder delivers them again.
func (d *drain) complete(ctx context.Context, ok []domain.DLQEntry) error {
	if len(ok) == 0 {
		return nil
	}
	ids := make([]string, len(ok))
	for i, en := range ok {
		ids[i] = en.ID
	}
	// A drain stopped by its context still records what was done.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.e.cfg.PublishTimeout)
	defer cancel()
	at := d.e.cfg.Now()
	done, err := d.e.store.CompleteBatch(wctx, ids, d.token, at)
	d.res.Success += len(done)
	d.res.Skipped += len(ok) - len(done)
	if err != nil {
		return err
	}
	for _, en := range ok {
		if !slices.Contains(done, en.ID) {
			continue
		}
		d.itemEvent(wctx, events.ReplayCompleted, en, store.Settled{Entry: domain.DLQEntry{Status: domain.DLQReplayed}},
			deliveryOutcome{Result: domain.AttemptOK}, "")
	}
	if len(done) < len(ok) {
		return fmt.Errorf("complete %d replayed entries of %s: %w: %d were no longer claimed under token %d",
			len(ok), d.svc, store.ErrLeaseLost, len(ok)-len(done), d.token)
	}
	return nil
}

// itemEvent publishes a completed, failed or escalated event asynchronously;
// flushEvents waits for the acks.
func (d *drain) itemEvent(ctx context.Context, kind events.ReplayEventKind, en domain.DLQEntry, s store.Settled, out deliveryOutcome, reason string) {
	at := d.e.cfg.Now().UTC()
	ev := events.ReplayEntryEvent{
		Service: d.svc, EntryID: en.ID, Operation: en.Operation, Attempt: en.RetryCount + 1,
		Status: s.Entry.Status, Error: out.Error, Reason: reason, Actor: d.opts.Actor, At: at,
	}
	if s.Entry.Status == domain.DLQPending {
		ev.Retryable, ev.NextAttemptAt = true, s.Entry.NextAttemptAt.UTC()
	}
	msg, _, err := d.e.eventMsg(d.svc, kind, ev, at)
	if err == nil {
		var f jetstream.PubAckFuture
		if f, err = d.e.js.PublishMsgAsync(msg); err == nil {
			d.pending = append(d.pending, f)
			return
		}
	}
	d.e.log.WarnContext(ctx, "publish replay event", slog.String("service", d.svc),
		slog.String("kind", string(kind)), slog.String("entry", en.ID), slog.Any("error", err))
}

// flushEvents waits for the acks of the events published since the last
// flush, and logs those that failed.
func (d *drain) flushEvents(ctx context.Context) {
	if len(d.pending) == 0 {
		return
	}
	// A network timeout, not a domain wait: on the real clock.
	timer := time.NewTimer(d.e.cfg.PublishTimeout)
	defer timer.Stop()
	for _, f := range d.pending {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			d.e.log.WarnContext(ctx, "replay event not stored", slog.String("service", d.svc), slog.Any("error", err))
		case <-timer.C:
			d.e.log.WarnContext(ctx, "replay events not acknowledged in time", slog.String("service", d.svc))
			d.pending = d.pending[:0]
			return
		}
	}
	d.pending = d.pending[:0]
}

// blocked records a governance block: an audit record (keyed by the event's
// ce-id, so that the audit consumer does not record it twice) and the blocked
// event. Neither may be skipped: the error is returned.
func (d *drain) blocked(ctx context.Context, dec domain.GovernanceDecision) error {
	at := d.e.cfg.Now().UTC()
	ev := events.ReplayBlockedEvent{Service: d.svc, Gate: dec.Blocker, Reason: dec.Reason, Actor: d.opts.Actor, At: at}
	msg, env, err := d.e.eventMsg(d.svc, events.ReplayBlocked, ev, at)
	if err != nil {
		return fmt.Errorf("%w: blocked of %s: %w", ErrEventPublish, d.svc, err)
	}
	// The record is the one the audit consumer makes of the event, under the
	// event's ce-id: whichever of the two comes first writes it.
	subj, err := events.ParseSubject(msg.Subject)
	if err != nil {
		return err
	}
	rec, _, err := AuditRecordFor(events.Message{Subject: subj, Envelope: env, Payload: ev})
	if err != nil {
		return err
	}
	if _, _, err := d.e.store.AppendAuditEvent(ctx, env.ID, rec); err != nil {
		return fmt.Errorf("audit the governance block of %s: %w", d.svc, err)
	}
	if _, err := d.e.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("%w: blocked of %s: %w", ErrEventPublish, d.svc, err)
	}
	d.e.log.InfoContext(ctx, "replay blocked by governance", slog.String("service", d.svc),
		slog.String("gate", string(dec.Blocker)), slog.String("reason", dec.Reason))
	return nil
}

// FleetView adapts a fleetstate.View to the engine's BreakerView.
func FleetView(v *fleetstate.View) BreakerView { return fleetView{v} }

type fleetView struct{ v *fleetstate.View }

func (f fleetView) Breaker(svc string) (domain.State, uint64, bool) {
	s, ok := f.v.Snapshot(svc)
	return s.State, s.Generation, ok
}

func (f fleetView) Config(svc string) domain.Config { return f.v.Config(svc) }

func (f fleetView) Governance() domain.Governance { return f.v.Governance() }

func escalationReason(e domain.Escalation) string {
	switch e {
	case domain.EscalationRetriesExhausted:
		return ReasonMaxRetriesExhausted
	case domain.EscalationNotRetryable:
		return ReasonNotRetryable
	case domain.EscalationForceClose:
		return ReasonForceClose
	}
	return string(e)
}
