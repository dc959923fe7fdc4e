package devmode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/baldurfleet/baldur"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/replay"
)

// Defaults of DemoConfig.
const (
	// DefaultDemoService is the simulated dependency's service name.
	DefaultDemoService = "payments"
	// DefaultDemoClients is the number of SDK clients calling it.
	DefaultDemoClients = 3
	// DefaultDemoCallEvery is how often each client calls it.
	DefaultDemoCallEvery = 200 * time.Millisecond
	// DefaultDemoHealthyFor is how long the dependency is healthy before
	// the outage.
	DefaultDemoHealthyFor = 5 * time.Second
	// DefaultDemoOutageFor is how long the dependency stays down after the
	// breaker opened.
	DefaultDemoOutageFor = 3 * time.Second
	// DefaultDemoFailureRate is the share of calls that fail during the
	// outage.
	DefaultDemoFailureRate = 0.8
	// DefaultDemoProgress is the interval of the progress lines.
	DefaultDemoProgress = time.Second
	// DefaultDemoServiceConfig is the demo service's config in
	// baldur_config: short timeouts so the story fits in a minute,
	// continuous replay so late dead letters drain too, and a replay rate
	// limit so the drain can be watched.
	DefaultDemoServiceConfig = `{"recovery_timeout":"5s","window":"10s","minimum_calls":10,"failure_threshold":10,` +
		`"auto_replay":"continuous","replay_rate_limit":20}`
	// quietCallEvery is how often each client calls once the story is told.
	quietCallEvery = time.Second
)

// DemoConfig tunes the demo. Zero fields take the defaults above.
type DemoConfig struct {
	// Service is the simulated dependency's name.
	Service string
	// Clients is the number of SDK clients (nodes) calling it.
	Clients int
	// CallEvery is the interval between two calls of one client.
	CallEvery time.Duration
	// HealthyFor is how long the dependency works before it starts failing.
	HealthyFor time.Duration
	// OutageFor is how long it keeps failing after the breaker opened.
	OutageFor time.Duration
	// FailureRate is the share of calls (0 to 1) that fail during the outage.
	FailureRate float64
	// Progress is the interval of the progress lines.
	Progress time.Duration
	// ServiceConfig is the service's value in baldur_config.
	ServiceConfig string
}

func (c DemoConfig) withDefaults() (DemoConfig, error) {
	if c.Service == "" {
		c.Service = DefaultDemoService
	}
	if c.Clients == 0 {
		c.Clients = DefaultDemoClients
	}
	if c.CallEvery == 0 {
		c.CallEvery = DefaultDemoCallEvery
	}
	if c.HealthyFor == 0 {
		c.HealthyFor = DefaultDemoHealthyFor
	}
	if c.OutageFor == 0 {
		c.OutageFor = DefaultDemoOutageFor
	}
	if c.FailureRate == 0 {
		c.FailureRate = DefaultDemoFailureRate
	}
	if c.Progress == 0 {
		c.Progress = DefaultDemoProgress
	}
	if c.ServiceConfig == "" {
		c.ServiceConfig = DefaultDemoServiceConfig
	}
	switch {
	case c.Clients < 1 || c.Clients > 100:
		return c, fmt.Errorf("%w: demo clients %d outside 1..100", ErrConfig, c.Clients)
	case c.CallEvery < time.Millisecond:
		return c, fmt.Errorf("%w: demo call interval %s is below 1ms", ErrConfig, c.CallEvery)
	case c.FailureRate <= 0 || c.FailureRate > 1:
		return c, fmt.Errorf("%w: demo failure rate %g outside (0, 1]", ErrConfig, c.FailureRate)
	case c.HealthyFor < 0 || c.OutageFor < 0 || c.Progress < 10*time.Millisecond:
		return c, fmt.Errorf("%w: demo durations must be positive (progress at least 10ms)", ErrConfig)
	}
	return c, nil
}

// DemoReport is what the demo saw, for tests and the closing summary.
type DemoReport struct {
	// Opened, HalfOpened and Closed count the breaker's transitions into
	// each state during the demo.
	Opened, HalfOpened, Closed int
	// Calls, Refused and Failed count the clients' calls: all of them, those
	// the breaker refused, and those that ran and failed.
	Calls, Refused, Failed int64
	// DeadLetters is the number of dead letters the clients submitted (and
	// the stream acknowledged).
	DeadLetters int
	// Replayed is the number of those the replay handler completed.
	Replayed int
	// Counts is the service's DLQ depth by status when the story ended.
	Counts map[domain.DLQStatus]int64
	// Took is how long the story took.
	Took time.Duration
}

// phase is where the story is.
type phase int

const (
	phaseHealthy phase = iota
	phaseOutage
	phaseOpen
	phaseRecovered
	phaseDraining
	phaseQuiet
)

// Demo is a running demo: the simulated dependency, its clients and the
// narrator.
type Demo struct {
	cfg   DemoConfig
	out   io.Writer
	log   *slog.Logger
	ops   *opsclient.Client
	dep   *dependency
	begin time.Time

	clients   []*baldur.Client
	stopServe []func() error
	callEvery atomic.Int64
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	calls, refused, failed, dlFailed atomic.Int64

	mu        sync.Mutex
	submitted map[string]bool
	replayed  map[string]bool
	report    DemoReport

	done chan struct{}
}

// startDemo writes the service's config, connects the clients, serves
// replays and starts the calls and the narrator. life bounds the demo's
// goroutines, ctx its start.
func startDemo(life, ctx context.Context, f *Fleet, ops *opsclient.Client) (*Demo, error) {
	cfg := f.cfg.DemoConfig
	d := &Demo{
		cfg: cfg, out: f.cfg.Out, log: f.logger("demo"), ops: ops,
		dep:       &dependency{rate: cfg.FailureRate},
		submitted: map[string]bool{}, replayed: map[string]bool{},
		done: make(chan struct{}),
	}
	d.callEvery.Store(int64(cfg.CallEvery))
	if _, err := ops.ConfigSet(ctx, cfg.Service, []byte(cfg.ServiceConfig)); err != nil {
		return nil, fmt.Errorf("%w: demo: write the config of %s: %w", ErrStart, cfg.Service, err)
	}
	updates, err := ops.WatchBreakers(life)
	if err != nil {
		return nil, fmt.Errorf("%w: demo: watch the breakers: %w", ErrStart, err)
	}
	for i := range cfg.Clients {
		node := fmt.Sprintf("demo-client-%d", i+1)
		nc, _, err := f.connect(node)
		if err != nil {
			return nil, err
		}
		c, err := baldur.Connect(ctx, nc, baldur.WithNodeID(node), baldur.WithLogger(d.log))
		if err != nil {
			return nil, fmt.Errorf("%w: demo: SDK client %s: %w", ErrStart, node, err)
		}
		d.clients = append(d.clients, c)
		stop, err := c.HandleReplay(cfg.Service, d.handleReplay)
		if err != nil {
			d.closeClients(ctx)
			return nil, fmt.Errorf("%w: demo: serve the replays of %s: %w", ErrStart, cfg.Service, err)
		}
		d.stopServe = append(d.stopServe, stop)
	}

	run, cancel := context.WithCancel(life)
	d.cancel = cancel
	d.begin = time.Now()
	d.say("demo: %d SDK clients call %s every %s through Execute; a refused call becomes a dead letter, "+
		"and HandleReplay serves the replays", cfg.Clients, cfg.Service, cfg.CallEvery)
	d.say("demo: config of %s in baldur_config: %s", cfg.Service, cfg.ServiceConfig)
	d.say("%s is healthy; it will start failing in %s", cfg.Service, cfg.HealthyFor)
	for i, c := range d.clients {
		d.wg.Go(func() { d.callLoop(run, c, i+1) })
	}
	d.wg.Go(func() { d.narrate(run, updates) })
	return d, nil
}

// Done is closed once the story is told: the breaker opened, closed, and the
// backlog drained to zero.
func (d *Demo) Done() <-chan struct{} { return d.done }

// Report returns what the demo saw so far (complete once Done is closed).
func (d *Demo) Report() DemoReport {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.report
	r.Calls, r.Refused, r.Failed = d.calls.Load(), d.refused.Load(), d.failed.Load()
	r.DeadLetters, r.Replayed = len(d.submitted), d.countReplayedLocked()
	return r
}

func (d *Demo) countReplayedLocked() int {
	n := 0
	for id := range d.submitted {
		if d.replayed[id] {
			n++
		}
	}
	return n
}

// stop ends the calls and the narrator, stops serving replays and closes the
// clients.
func (d *Demo) stop(ctx context.Context) error {
	d.cancel()
	d.wg.Wait()
	var errs []error
	for _, stop := range d.stopServe {
		if err := stop(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, d.closeClients(ctx))
	return errors.Join(errs...)
}

func (d *Demo) closeClients(ctx context.Context) error {
	var errs []error
	for _, c := range d.clients {
		if err := c.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	d.clients = nil
	return errors.Join(errs...)
}

// callLoop is one client: it charges an order through Execute, with a dead
// letter when the breaker refuses the call.
func (d *Demo) callLoop(ctx context.Context, c *baldur.Client, client int) {
	t := time.NewTimer(time.Duration(d.callEvery.Load()))
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.call(ctx, c, client, n)
		t.Reset(time.Duration(d.callEvery.Load()))
	}
}

func (d *Demo) call(ctx context.Context, c *baldur.Client, client, n int) {
	id := uuid.NewString()
	order := fmt.Sprintf("%d-%d-%s", client, n, id[:8])
	op := baldur.FailedOperation{
		ID: id, Operation: "charge", IdempotencyKey: "order-" + order + "-charge",
		EntityType: "order", EntityID: order,
		Request: map[string]any{"order": order, "amount_cents": 100 * (1 + n%50)},
	}
	err := c.Execute(ctx, d.cfg.Service, d.dep.charge, baldur.WithDeadLetter(op, false))
	if ctx.Err() != nil {
		return
	}
	d.calls.Add(1)
	switch {
	case err == nil:
	case baldur.IsRefusal(err):
		d.refused.Add(1)
		if errors.Is(err, baldur.ErrPublish) || errors.Is(err, baldur.ErrInvalidDeadLetter) {
			d.dlFailed.Add(1)
			d.log.Warn("dead letter not submitted", slog.Any("error", err))
			return
		}
		d.mu.Lock()
		d.submitted[id] = true
		d.mu.Unlock()
	default:
		d.failed.Add(1)
	}
}

// handleReplay is the service's replay handler: it charges the order again.
func (d *Demo) handleReplay(ctx context.Context, req baldur.ReplayRequest) error {
	if err := d.dep.charge(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	d.replayed[req.DLQID] = true
	d.mu.Unlock()
	return nil
}

// narrator is the narrator's state, owned by its goroutine.
type narrator struct {
	phase      phase
	state      domain.State
	known      bool
	last       domain.Breaker
	recoverAt  time.Time
	healthyEnd time.Time
}

// narrate drives the dependency through the story and tells it.
func (d *Demo) narrate(ctx context.Context, updates <-chan opsclient.BreakerUpdate) {
	tick := time.NewTicker(d.cfg.Progress)
	defer tick.Stop()
	n := &narrator{healthyEnd: time.Now().Add(d.cfg.HealthyFor)}
	for {
		select {
		case <-ctx.Done():
			return
		case u, ok := <-updates:
			if !ok {
				return
			}
			if u.Service != d.cfg.Service || u.Deleted {
				continue
			}
			d.onState(n, u.Breaker, u.Initial)
		case now := <-tick.C:
			d.onTick(ctx, n, now)
		}
	}
}

func (d *Demo) onState(n *narrator, b domain.Breaker, initial bool) {
	n.last = b
	if initial || !n.known {
		n.state, n.known = b.State, true
		if b.State != domain.StateClosed {
			d.say("%s's breaker is %s from an earlier run; the outage starts once it has closed", d.cfg.Service, b.State)
		}
		return
	}
	if b.State == n.state {
		return
	}
	n.state = b.State
	trigger := ""
	if b.LastTransition != nil {
		trigger = string(b.LastTransition.Trigger)
	}
	d.mu.Lock()
	switch b.State {
	case domain.StateOpen:
		d.report.Opened++
	case domain.StateHalfOpen:
		d.report.HalfOpened++
	case domain.StateClosed:
		d.report.Closed++
	}
	d.mu.Unlock()
	switch b.State {
	case domain.StateOpen:
		d.say(">> breaker OPEN fleet-wide (trigger %s; window: %d failures in %d calls, %.0f%%): every client now fails fast, "+
			"and each refused call becomes a dead letter", trigger, b.Window.Failures, b.Window.Successes+b.Window.Failures, b.Window.FailureRate)
		if n.phase == phaseOutage {
			n.phase, n.recoverAt = phaseOpen, time.Now().Add(d.cfg.OutageFor)
		}
	case domain.StateHalfOpen:
		d.say(">> breaker HALF_OPEN (trigger %s): a few probe calls are let through, fleet-wide", trigger)
	case domain.StateClosed:
		d.say(">> breaker CLOSED (trigger %s): calls flow again, and the replay-worker drains the backlog", trigger)
		if n.phase == phaseRecovered || n.phase == phaseOpen {
			n.phase = phaseDraining
		}
	}
}

func (d *Demo) onTick(ctx context.Context, n *narrator, now time.Time) {
	switch n.phase {
	case phaseHealthy:
		if now.Before(n.healthyEnd) || (n.known && n.state != domain.StateClosed) {
			d.progress("calls: %d, all fine", d.calls.Load())
			return
		}
		d.dep.failing.Store(true)
		n.phase = phaseOutage
		d.say(">> %s starts failing: %.0f%% of calls return HTTP 503", d.cfg.Service, 100*d.cfg.FailureRate)
	case phaseOutage:
		w := n.last.Window
		d.progress("failures rise: %d failures in %d calls in the window (%.0f%%), %d in a row",
			w.Failures, w.Successes+w.Failures, w.FailureRate, n.last.ConsecutiveFailures)
	case phaseOpen, phaseRecovered:
		if n.phase == phaseOpen && !now.Before(n.recoverAt) {
			d.dep.failing.Store(false)
			n.phase = phaseRecovered
			d.say(">> %s has recovered; the breaker does not know yet and stays open until recovery_at (%s)",
				d.cfg.Service, n.last.RecoveryAt.Local().Format(time.TimeOnly))
		}
		counts, _ := d.counts(ctx)
		d.mu.Lock()
		submitted := len(d.submitted)
		d.mu.Unlock()
		d.progress("failing fast: %d calls refused, %d dead letters submitted; DLQ %s",
			d.refused.Load(), submitted, formatCounts(counts))
	case phaseDraining:
		counts, err := d.counts(ctx)
		if err != nil {
			d.progress("DLQ stats unavailable: %v", err)
			return
		}
		r := d.Report()
		d.progress("replaying: %d of %d dead letters replayed; DLQ %s", r.Replayed, r.DeadLetters, formatCounts(counts))
		if r.DeadLetters == 0 || r.Replayed < r.DeadLetters || counts[domain.DLQPending] > 0 || counts[domain.DLQReplaying] > 0 {
			return
		}
		d.finish(n, counts)
	}
}

// finish ends the story: the summary, then quiet traffic.
func (d *Demo) finish(n *narrator, counts map[domain.DLQStatus]int64) {
	n.phase = phaseQuiet
	d.callEvery.Store(int64(quietCallEvery))
	d.mu.Lock()
	d.report.Counts = counts
	d.report.Took = time.Since(d.begin)
	d.mu.Unlock()
	r := d.Report()
	d.say(">> backlog drained to zero: %d dead letters, %d replayed; DLQ %s", r.DeadLetters, r.Replayed, formatCounts(counts))
	d.say("story complete in %s: opened %d, half-opened %d, closed %d; %d calls, %d refused, %d failed",
		r.Took.Round(100*time.Millisecond), r.Opened, r.HalfOpened, r.Closed, r.Calls, r.Refused, r.Failed)
	d.say("the clients keep calling %s quietly, once a second each; open the dashboard or try the CLI commands above", d.cfg.Service)
	close(d.done)
}

// counts returns the service's DLQ depth by status.
func (d *Demo) counts(ctx context.Context) (map[domain.DLQStatus]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var reply replay.DLQStatsReply
	if err := d.ops.DLQ(ctx, events.DLQOpStats, replay.DLQStatsRequest{Service: d.cfg.Service}, &reply); err != nil {
		return nil, err
	}
	out := map[domain.DLQStatus]int64{}
	for st, n := range reply.Counts[d.cfg.Service] {
		out[st] = n
	}
	return out, nil
}

// formatCounts prints a DLQ depth in status order, "empty" when nothing.
func formatCounts(counts map[domain.DLQStatus]int64) string {
	s := ""
	for _, st := range []domain.DLQStatus{domain.DLQPending, domain.DLQReplaying, domain.DLQReplayed,
		domain.DLQRequiresReview, domain.DLQReviewing, domain.DLQResolved, domain.DLQRejected,
		domain.DLQArchived, domain.DLQExpired, domain.DLQPermanentlyFailed} {
		if counts[st] == 0 && st != domain.DLQPending {
			continue
		}
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf("%s=%d", st, counts[st])
	}
	return s
}

func (d *Demo) stamp() string {
	return fmt.Sprintf("[%6.1fs]", time.Since(d.begin).Seconds())
}

// say prints a line of the story.
func (d *Demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "%s %s\n", d.stamp(), fmt.Sprintf(format, args...))
}

// progress prints a progress line, indented under the story.
func (d *Demo) progress(format string, args ...any) {
	fmt.Fprintf(d.out, "%s    %s\n", d.stamp(), fmt.Sprintf(format, args...))
}

// dependency is the simulated payments service.
type dependency struct {
	rate    float64
	failing atomic.Bool
}

// errUnavailable is the dependency's failure.
type unavailableError struct{}

func (unavailableError) Error() string       { return "payments: 503 service unavailable" }
func (unavailableError) FailureType() string { return "HTTP_503" }

// charge takes a few milliseconds and fails at the dependency's rate while it
// is failing.
func (p *dependency) charge(ctx context.Context) error {
	t := time.NewTimer(time.Duration(2+rand.IntN(8)) * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	if p.failing.Load() && rand.Float64() < p.rate {
		return unavailableError{}
	}
	return nil
}
