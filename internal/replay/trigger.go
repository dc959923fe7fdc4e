package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/topology"
)

// Trigger defaults.
const (
	// DefaultContinuousEvery is how often services with auto_replay
	// continuous are drained while their breaker is closed.
	DefaultContinuousEvery = 30 * time.Second
	// DefaultCatchUp bounds the wait for the local view to see the
	// generation a transition event names.
	DefaultCatchUp = 5 * time.Second
	// DefaultRetryTriggerAfter is the redelivery delay of a trigger whose
	// drain failed.
	DefaultRetryTriggerAfter = 5 * time.Second
	// DefaultMaxContinuousDrains bounds the continuous drains that run at
	// once.
	DefaultMaxContinuousDrains = 8
	// catchUpPoll is how often the view is looked at while catching up.
	catchUpPoll = 20 * time.Millisecond
)

// Errors of the trigger.
var (
	// ErrTriggerRunning reports a Start of a running Trigger.
	ErrTriggerRunning = errors.New("replay: trigger already started")
)

// TriggerConfig tunes a Trigger. Zero fields take their defaults; the clock
// and the logger are the engine's.
type TriggerConfig struct {
	// Stream and Consumer name the durable consumer of CLOSED transitions;
	// topology.StreamEvents and topology.ConsumerReplayTriggers when empty.
	Stream   string
	Consumer string
	// ContinuousEvery is the period of continuous drains;
	// DefaultContinuousEvery when zero, off when negative.
	ContinuousEvery time.Duration
	// MaxContinuousDrains bounds the continuous drains running at once;
	// DefaultMaxContinuousDrains when zero.
	MaxContinuousDrains int
	// Heartbeat is how often a trigger whose drain runs is marked in
	// progress; a third of the consumer's ack wait when zero.
	Heartbeat time.Duration
	// CatchUp bounds the wait for the view to reach an event's generation;
	// DefaultCatchUp when zero.
	CatchUp time.Duration
	// RetryAfter is the redelivery delay of a trigger whose drain failed;
	// DefaultRetryTriggerAfter when zero.
	RetryAfter time.Duration
}

// Trigger starts drains (DESIGN §5): it consumes the CLOSED transitions of
// the durable consumer all replay-workers share, and for one with
// trigger_replay drains the service with the engine, unless the service's
// auto_replay is manual. A transition with trigger manual (an operator's
// force-close) escalates failures at once. The event is acked when the drain
// ends (or another worker holds the lease) and marked in progress while it
// runs, so a worker that dies mid-drain leaves it to be redelivered to
// another once its lease has expired. Services whose auto_replay is
// continuous are also drained every ContinuousEvery while their breaker is
// closed.
type Trigger struct {
	engine *Engine
	js     jetstream.JetStream
	cfg    TriggerConfig
	log    *slog.Logger

	mu      sync.Mutex
	running bool
	cancel  context.CancelFunc
	cc      jetstream.ConsumeContext
	wg      sync.WaitGroup

	// continuousSlots holds a token per running continuous drain.
	continuousSlots chan struct{}
	// continuousBlocked is set while governance blocks continuous drains.
	continuousBlocked atomic.Bool
}

// NewTrigger returns a trigger that drains with engine and binds to its
// consumer on js at Start.
func NewTrigger(engine *Engine, js jetstream.JetStream, cfg TriggerConfig) (*Trigger, error) {
	if engine == nil || js == nil {
		return nil, fmt.Errorf("%w: the trigger needs an engine and JetStream", ErrInvalidEngineConfig)
	}
	if cfg.Stream == "" {
		cfg.Stream = topology.StreamEvents
	}
	if cfg.Consumer == "" {
		cfg.Consumer = topology.ConsumerReplayTriggers
	}
	if cfg.ContinuousEvery == 0 {
		cfg.ContinuousEvery = DefaultContinuousEvery
	}
	if cfg.CatchUp == 0 {
		cfg.CatchUp = DefaultCatchUp
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = DefaultRetryTriggerAfter
	}
	if cfg.MaxContinuousDrains == 0 {
		cfg.MaxContinuousDrains = DefaultMaxContinuousDrains
	}
	if cfg.Heartbeat < 0 || cfg.CatchUp < 0 || cfg.RetryAfter < 0 || cfg.MaxContinuousDrains < 0 {
		return nil, fmt.Errorf("%w: trigger heartbeat, catch-up, retry delay and continuous drains must not be negative", ErrInvalidEngineConfig)
	}
	return &Trigger{engine: engine, js: js, cfg: cfg, continuousSlots: make(chan struct{}, cfg.MaxContinuousDrains),
		log: engine.log.With(slog.String("component", "replay-trigger"))}, nil
}

// Start binds to the consumer and starts consuming, and starts the
// continuous drains. Cancelling ctx stops both, like Stop.
func (t *Trigger) Start(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running {
		return ErrTriggerRunning
	}
	cons, err := t.js.Consumer(ctx, t.cfg.Stream, t.cfg.Consumer)
	if err != nil {
		return fmt.Errorf("replay: trigger: bind consumer %s on %s: %w", t.cfg.Consumer, t.cfg.Stream, err)
	}
	if t.cfg.Heartbeat == 0 {
		t.cfg.Heartbeat = topology.ReplayEventsAckWait / 3
		if aw := cons.CachedInfo().Config.AckWait; aw > 0 {
			t.cfg.Heartbeat = aw / 3
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	cc, err := cons.Consume(func(msg jetstream.Msg) { t.handle(runCtx, msg) })
	if err != nil {
		cancel()
		return fmt.Errorf("replay: trigger: consume %s: %w", t.cfg.Consumer, err)
	}
	t.cc, t.cancel, t.running = cc, cancel, true
	if t.cfg.ContinuousEvery > 0 {
		t.wg.Go(func() { t.continuous(runCtx) })
	}
	return nil
}

// Stop stops consuming, cancels the drains running (each releases its lease,
// putting its claimed entries back) and waits for them until ctx ends. The
// triggers of cancelled drains are handed back for another worker.
func (t *Trigger) Stop(ctx context.Context) error {
	t.mu.Lock()
	if !t.running {
		t.mu.Unlock()
		return nil
	}
	t.running = false
	t.cc.Stop()
	t.cancel()
	t.mu.Unlock()
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("replay: trigger: stop: %w", ctx.Err())
	}
}

// handle takes one transition event. Anything that is not a CLOSED
// transition with trigger_replay is acked and ignored; a malformed event is
// terminated (the breaker-workers validate what they publish, so it is not
// expected).
func (t *Trigger) handle(ctx context.Context, msg jetstream.Msg) {
	m, err := events.Decode(msg.Subject(), msg.Headers(), msg.Data())
	if err != nil {
		t.log.WarnContext(ctx, "malformed transition event", slog.String("subject", msg.Subject()), slog.Any("error", err))
		_ = msg.TermWithReason("malformed transition event: " + clipReason(err.Error()))
		return
	}
	ev, ok := m.Payload.(events.TransitionEvent)
	if !ok || ev.To != domain.StateClosed || !ev.TriggerReplay {
		_ = msg.Ack()
		return
	}
	if mode := t.engine.view.Config(ev.Service).AutoReplay; mode == domain.AutoReplayManual {
		t.log.InfoContext(ctx, "breaker closed with trigger_replay; auto_replay is manual, no replay",
			slog.String("service", ev.Service), slog.Uint64("generation", ev.Generation))
		_ = msg.Ack()
		return
	}
	t.wg.Go(func() { t.run(ctx, msg, ev) })
}

// run drains the service of a CLOSED transition and settles the event.
func (t *Trigger) run(ctx context.Context, msg jetstream.Msg, ev events.TransitionEvent) {
	if !t.catchUp(ctx, ev) {
		if ctx.Err() != nil {
			_ = msg.Nak()
			return
		}
		t.log.InfoContext(ctx, "stale replay trigger: the breaker moved on",
			slog.String("service", ev.Service), slog.Uint64("generation", ev.Generation))
		_ = msg.Ack()
		return
	}
	hb, stopHB := context.WithCancel(ctx)
	var hbDone sync.WaitGroup
	hbDone.Go(func() {
		for {
			select {
			case <-hb.Done():
				return
			case <-t.engine.cfg.After(t.cfg.Heartbeat):
				_ = msg.InProgress()
			}
		}
	})
	res, err := t.engine.ReplayOnClose(ctx, ev.Service, ReplayOptions{
		Trigger:    events.BatchTriggerCircuitClose,
		ForceClose: ev.Trigger == domain.TriggerManual,
		Actor:      ev.Actor,
	})
	stopHB()
	hbDone.Wait()
	if err != nil {
		t.log.WarnContext(ctx, "replay drain failed; the trigger will be redelivered",
			slog.String("service", ev.Service), slog.String("stop", string(res.Stop)), slog.Any("error", err))
		_ = msg.NakWithDelay(t.cfg.RetryAfter)
		return
	}
	t.log.InfoContext(ctx, "replay drain ended", slog.String("service", ev.Service), slog.String("stop", string(res.Stop)),
		slog.Int("total", res.Total), slog.Int("success", res.Success), slog.Int("failed", res.Failed),
		slog.Int("escalated", res.Escalated), slog.Bool("inflight_skipped", res.InflightSkipped))
	_ = msg.Ack()
}

// catchUp waits until the local view has seen the event's generation, and
// reports whether the breaker is then still closed at it: a later generation
// that is not closed makes the trigger stale.
func (t *Trigger) catchUp(ctx context.Context, ev events.TransitionEvent) bool {
	deadline := t.engine.cfg.Now().Add(t.cfg.CatchUp)
	for {
		st, gen, ok := t.engine.view.Breaker(ev.Service)
		if ok && gen >= ev.Generation {
			return st == domain.StateClosed
		}
		if !t.engine.cfg.Now().Before(deadline) {
			// The view lags; let the engine's own check decide.
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.engine.cfg.After(catchUpPoll):
		}
	}
}

// continuous drains, every ContinuousEvery, the services with pending
// entries whose auto_replay is continuous and whose breaker is closed.
func (t *Trigger) continuous(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.engine.cfg.After(t.cfg.ContinuousEvery):
		}
		t.continuousOnce(ctx)
	}
}

// continuousOnce starts the continuous drains due now: one per service whose
// auto_replay is continuous, whose breaker is closed and which has pending
// entries due, at most MaxContinuousDrains at once (the others start in a
// later period). Its cost is one query, whatever the number of quiet
// services: those whose entries all wait for a later attempt are not named
// by the query, and no drain starts while governance blocks replays (a
// drain would only be blocked, published and audited, every period, for
// every service).
func (t *Trigger) continuousOnce(ctx context.Context) {
	if dec := t.engine.view.Governance().CheckReplay(); !dec.Allowed {
		if !t.continuousBlocked.Swap(true) {
			t.log.InfoContext(ctx, "continuous replay paused by governance", slog.String("reason", dec.Reason))
		}
		return
	}
	if t.continuousBlocked.Swap(false) {
		t.log.InfoContext(ctx, "continuous replay resumed")
	}
	svcs, err := t.engine.store.ServicesWithDueEntries(ctx, t.engine.cfg.Now())
	if err != nil {
		t.log.WarnContext(ctx, "continuous replay: find services with due entries", slog.Any("error", err))
		return
	}
	for _, svc := range svcs {
		if t.engine.Draining(svc) || t.engine.view.Config(svc).AutoReplay != domain.AutoReplayContinuous {
			continue
		}
		if st, _, ok := t.engine.view.Breaker(svc); !ok || st != domain.StateClosed {
			continue
		}
		select {
		case t.continuousSlots <- struct{}{}:
		default:
			return // every slot is busy: the rest start in a later period
		}
		t.wg.Go(func() {
			defer func() { <-t.continuousSlots }()
			if _, err := t.engine.ReplayOnClose(ctx, svc, ReplayOptions{Trigger: events.BatchTriggerContinuous}); err != nil && ctx.Err() == nil {
				t.log.WarnContext(ctx, "continuous replay failed", slog.String("service", svc), slog.Any("error", err))
			}
		})
	}
}
