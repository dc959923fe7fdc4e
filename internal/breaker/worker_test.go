package breaker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// clock is a controllable clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// tlog writes a worker's log records to the test's log.
type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) { l.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

type fleet struct {
	js   jetstream.JetStream
	top  *topology.Topology
	view *fleetstate.View
	conn func(t *testing.T) *nats.Conn
}

func newFleet(t *testing.T, js jetstream.JetStream, conn func(t *testing.T) *nats.Conn, cfg topology.Config) *fleet {
	t.Helper()
	ctx := context.Background()
	top, err := topology.Ensure(ctx, js, cfg)
	require.NoError(t, err)
	view, err := fleetstate.Watch(ctx, js)
	require.NoError(t, err)
	t.Cleanup(view.Stop)
	return &fleet{js: js, top: top, view: view, conn: conn}
}

func setup(t *testing.T, partitions int, ttl time.Duration) *fleet {
	t.Helper()
	env := testenv.NATS(t)
	return newFleet(t, env.JS, func(t *testing.T) *nats.Conn { return env.Connect(t) },
		topology.Config{Partitions: partitions, LeaseTTL: ttl, Storage: jetstream.MemoryStorage})
}

// startWorker starts a worker on its own connection; it is stopped when the
// test ends.
func (f *fleet) startWorker(t *testing.T, node string, now func() time.Time, setup ...func(*breaker.Worker)) (*breaker.Worker, *nats.Conn) {
	t.Helper()
	return f.startWorkerOn(t, node, now, nil, setup...)
}

// startWorkerOn is startWorker with the worker's topology passed through
// wrap first (nil: as it is), for a test to put a fault in front of a bucket.
func (f *fleet) startWorkerOn(t *testing.T, node string, now func() time.Time, wrap func(*topology.Topology), setup ...func(*breaker.Worker)) (*breaker.Worker, *nats.Conn) {
	t.Helper()
	nc := f.conn(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	top, err := topology.Ensure(context.Background(), js, f.top.Config) // buckets bound to this connection
	require.NoError(t, err)
	if wrap != nil {
		wrap(top)
	}
	w, err := breaker.New(js, breaker.Config{
		Topology: top, Node: node, Configs: f.view, Governance: f.view, Clock: now, Conn: nc,
		Logger: slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	require.NoError(t, err)
	for _, s := range setup {
		s(w)
	}
	require.NoError(t, w.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w, nc
}

func publish(t *testing.T, js jetstream.JetStream, subj string, env events.Envelope, payload any) {
	t.Helper()
	msg, err := events.NewMsg(subj, env, payload)
	require.NoError(t, err)
	_, err = js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
}

func report(t *testing.T, js jetstream.JetStream, svc, node string, succ, fail int64) {
	t.Helper()
	trailing := fail
	if succ > 0 {
		trailing = 0
	}
	publish(t, js, events.MustOutcomeSubject(svc), events.NewEnvelopeRandomID(events.TypeOutcome, node, time.Now()),
		events.OutcomeReport{Successes: succ, Failures: fail, TrailingFailures: trailing})
}

func command(t *testing.T, js jetstream.JetStream, svc string, c events.BreakerCommand) string {
	t.Helper()
	env := events.NewEnvelopeRandomID(events.TypeControl, "cli", time.Now())
	publish(t, js, events.MustControlSubject(svc), env, c)
	return env.ID
}

func governance(t *testing.T, js jetstream.JetStream, c events.GovernanceCommand) {
	t.Helper()
	publish(t, js, events.SubjectGovernance, events.NewEnvelopeRandomID(events.TypeGovernance, "cli", time.Now()), c)
}

func setConfig(t *testing.T, f *fleet, svc, raw string) {
	t.Helper()
	_, err := f.top.ConfigKV.Put(context.Background(), svc, []byte(raw))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		want, err := domain.ResolveConfig(nil, []byte(raw))
		return err == nil && f.view.Config(svc) == want
	}, 5*time.Second, 5*time.Millisecond)
}

// state waits until svc's stored breaker satisfies ok and returns it.
func state(t *testing.T, f *fleet, svc string, ok func(b domain.Breaker) bool) domain.Breaker {
	t.Helper()
	store := breaker.NewStateStore(f.top.Breakers, f.js, "test", nil)
	var b domain.Breaker
	require.Eventually(t, func() bool {
		var err error
		b, _, err = store.Get(context.Background(), svc)
		return err == nil && ok(b)
	}, 10*time.Second, 5*time.Millisecond, "breaker %s never reached the wanted state; last %+v", svc, b)
	return b
}

func calls(want int64) func(domain.Breaker) bool {
	return func(b domain.Breaker) bool { return b.Window.Successes+b.Window.Failures == want }
}

// eventsOf returns the bodies of the events on filter published so far,
// waiting until there are at least n.
func eventsOf(t *testing.T, js jetstream.JetStream, filter string, n int) []jetstream.Msg {
	t.Helper()
	var out []jetstream.Msg
	require.Eventually(t, func() bool {
		ctx := context.Background()
		c, err := js.OrderedConsumer(ctx, topology.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
		if err != nil {
			return false
		}
		out = out[:0]
		for {
			batch, err := c.FetchNoWait(100)
			if err != nil {
				return false
			}
			got := 0
			for m := range batch.Messages() {
				out = append(out, m)
				got++
			}
			if got == 0 {
				break
			}
		}
		return len(out) >= n
	}, 10*time.Second, 10*time.Millisecond)
	return out
}

func transitions(t *testing.T, js jetstream.JetStream, svc string, n int) []events.TransitionEvent {
	t.Helper()
	filter, err := events.BreakerEventFilter(svc)
	require.NoError(t, err)
	var out []events.TransitionEvent
	for _, m := range eventsOf(t, js, filter, n) {
		ev, err := events.DecodeTransitionEvent(m.Data())
		require.NoError(t, err)
		out = append(out, ev)
	}
	return out
}

func TestWorkerTripRules(t *testing.T) {
	t.Parallel()
	f := setup(t, 4, 2*time.Second)
	clk := newClock()
	f.startWorker(t, "w1", clk.Now)

	t.Run("trips by rate", func(t *testing.T) {
		setConfig(t, f, "rate", `{"failure_threshold": 1000}`)
		report(t, f.js, "rate", "n1", 6, 0)
		report(t, f.js, "rate", "n1", 0, 3)
		report(t, f.js, "rate", "n1", 1, 0)
		b := state(t, f, "rate", calls(10))
		require.Equal(t, domain.StateClosed, b.State, "30%% failures do not trip")
		report(t, f.js, "rate", "n1", 0, 4)
		b = state(t, f, "rate", func(b domain.Breaker) bool { return b.State == domain.StateOpen })
		require.Equal(t, domain.TriggerAuto, b.LastTransition.Trigger)
		evs := transitions(t, f.js, "rate", 1)
		require.Len(t, evs, 1)
		require.Equal(t, domain.StateOpen, evs[0].To)
	})
	t.Run("trips by consecutive failures", func(t *testing.T) {
		setConfig(t, f, "consec", `{"failure_rate_threshold": 100, "minimum_calls": 1}`)
		report(t, f.js, "consec", "n1", 20, 0)
		for range 4 {
			report(t, f.js, "consec", "n1", 0, 1)
		}
		b := state(t, f, "consec", calls(24))
		require.Equal(t, domain.StateClosed, b.State)
		require.EqualValues(t, 4, b.ConsecutiveFailures)
		report(t, f.js, "consec", "n1", 0, 1)
		state(t, f, "consec", func(b domain.Breaker) bool { return b.State == domain.StateOpen })
	})
	t.Run("blocked by minimum_calls", func(t *testing.T) {
		report(t, f.js, "mincalls", "n1", 0, 9) // default failure_threshold 5, minimum_calls 10
		b := state(t, f, "mincalls", calls(9))
		require.Equal(t, domain.StateClosed, b.State)
		report(t, f.js, "mincalls", "n1", 0, 1)
		state(t, f, "mincalls", func(b domain.Breaker) bool { return b.State == domain.StateOpen })
	})
	t.Run("blocked by min_failing_nodes", func(t *testing.T) {
		setConfig(t, f, "nodes", `{"min_failing_nodes": 2}`)
		report(t, f.js, "nodes", "n1", 0, 20)
		b := state(t, f, "nodes", calls(20))
		require.Equal(t, domain.StateClosed, b.State, "one failing node cannot open the fleet")
		report(t, f.js, "nodes", "n2", 0, 1)
		state(t, f, "nodes", func(b domain.Breaker) bool { return b.State == domain.StateOpen })
	})
}

func TestWorkerCloseEmitsTriggerReplay(t *testing.T) {
	t.Parallel()
	f := setup(t, 2, 2*time.Second)
	clk := newClock()
	f.startWorker(t, "w1", clk.Now)
	report(t, f.js, "pay", "n1", 0, 10)
	b := state(t, f, "pay", func(b domain.Breaker) bool { return b.State == domain.StateOpen })

	clk.Advance(b.RecoveryAt.Sub(clk.Now()) + time.Second)
	command(t, f.js, "pay", events.BreakerCommand{Action: domain.ActionHalfOpen, Trigger: domain.TriggerRecoveryTimeout})
	state(t, f, "pay", func(b domain.Breaker) bool { return b.State == domain.StateHalfOpen })
	report(t, f.js, "pay", "n1", 1, 0)
	report(t, f.js, "pay", "n1", 1, 0) // success_threshold 2
	state(t, f, "pay", func(b domain.Breaker) bool { return b.State == domain.StateClosed })

	evs := transitions(t, f.js, "pay", 3)
	require.Len(t, evs, 3)
	var closes int
	for _, ev := range evs {
		if ev.To == domain.StateClosed {
			closes++
			require.True(t, ev.TriggerReplay)
			require.Equal(t, uint64(3), ev.Generation)
		}
	}
	require.Equal(t, 1, closes)
}

func TestWorkerCommands(t *testing.T) {
	t.Parallel()
	f := setup(t, 2, 2*time.Second)
	clk := newClock()
	w, _ := f.startWorker(t, "w1", clk.Now)
	manual := func(a domain.Action) events.BreakerCommand {
		return events.BreakerCommand{Action: a, Actor: "sre", Reason: "test"}
	}
	mode := func(m domain.Mode) func(domain.Breaker) bool {
		return func(b domain.Breaker) bool { return b.Mode == m }
	}

	open := manual(domain.ActionOpen)
	open.TTL = domain.Duration(30 * time.Minute)
	command(t, f.js, "svc", open)
	b := state(t, f, "svc", mode(domain.ModeForcedOpen))
	require.Equal(t, domain.StateOpen, b.State)
	require.Equal(t, clk.Now().Add(30*time.Minute), b.Manual.ExpiresAt, "TTL recorded")
	report(t, f.js, "svc", "n1", 50, 0)
	b = state(t, f, "svc", calls(50))
	require.Equal(t, domain.StateOpen, b.State, "forced: counted, never changes the state")

	command(t, f.js, "svc", manual(domain.ActionClose))
	b = state(t, f, "svc", mode(domain.ModeForcedClosed))
	require.Equal(t, domain.StateClosed, b.State)
	require.Equal(t, clk.Now().Add(domain.DefaultConfig().ManualOverrideTTL.D()), b.Manual.ExpiresAt)

	command(t, f.js, "svc", manual(domain.ActionAuto))
	state(t, f, "svc", mode(domain.ModeAuto))

	command(t, f.js, "svc", manual(domain.ActionDisable))
	state(t, f, "svc", mode(domain.ModeDisabled))
	command(t, f.js, "svc", manual(domain.ActionMetricsOnly))
	state(t, f, "svc", mode(domain.ModeMetricsOnly))
	report(t, f.js, "svc", "n1", 0, 50)
	b = state(t, f, "svc", func(b domain.Breaker) bool { return b.Window.Failures == 50 })
	require.Equal(t, domain.StateClosed, b.State, "metrics_only records but never trips")
	command(t, f.js, "svc", manual(domain.ActionAuto))
	state(t, f, "svc", mode(domain.ModeAuto))

	ov := manual(domain.ActionOverride)
	ft := 100
	ov.Override = &domain.ThresholdOverride{FailureThreshold: &ft}
	command(t, f.js, "svc", ov)
	b = state(t, f, "svc", func(b domain.Breaker) bool { return b.Override != nil })
	require.Equal(t, 100, *b.Override.FailureThreshold)

	// No change is a no-op: nothing written, nothing published.
	before := w.Stats().NoOps
	command(t, f.js, "svc", manual(domain.ActionAuto))
	require.Eventually(t, func() bool { return w.Stats().NoOps == before+1 }, 5*time.Second, 5*time.Millisecond)

	// Kill switch on: a manual command is refused with a rejected event…
	governance(t, f.js, events.GovernanceCommand{Action: events.ActionKillSwitchOn, Actor: "ic", Reason: "incident"})
	require.Eventually(t, func() bool { return f.view.Governance().KillSwitch.Active }, 5*time.Second, 5*time.Millisecond)
	ge := eventsOf(t, f.js, "baldur.event.governance.kill_switch", 1)
	require.Len(t, ge, 1)
	id := command(t, f.js, "svc", manual(domain.ActionOpen))
	rej := eventsOf(t, f.js, "baldur.event.rejected.control", 1)
	r, err := events.DecodeRejected(rej[0].Data())
	require.NoError(t, err)
	require.Equal(t, breaker.CodeKillSwitchOn, r.Code)
	require.Equal(t, id, r.CEID)
	require.Contains(t, r.Reason, "kill switch")
	require.Equal(t, domain.ModeAuto, state(t, f, "svc", mode(domain.ModeAuto)).Mode)

	// … unless it overrides the kill switch, which is visible in the event.
	forced := manual(domain.ActionOpen)
	forced.OverrideKillSwitch = true
	forced.Reason = "override: vendor down"
	command(t, f.js, "svc", forced)
	state(t, f, "svc", mode(domain.ModeForcedOpen))
	evs := transitions(t, f.js, "svc", 1)
	last := evs[len(evs)-1]
	require.Equal(t, domain.ModeForcedOpen, last.Mode)
	require.Equal(t, "override: vendor down", last.Reason)
	require.Equal(t, "sre", last.Actor)
	require.EqualValues(t, 1, w.Stats().KillSwitchOverrides)
	require.EqualValues(t, 1, w.Stats().Refused)
}

func TestWorkerFoldsDuplicatesOnce(t *testing.T) {
	t.Parallel()
	f := setup(t, 2, 2*time.Second)
	w, _ := f.startWorker(t, "w1", nil)
	env := events.NewEnvelopeRandomID(events.TypeOutcome, "n1", time.Now())
	for range 3 { // the same Nats-Msg-Id: the stream keeps one
		publish(t, f.js, events.MustOutcomeSubject("dup"), env, events.OutcomeReport{Successes: 1})
	}
	report(t, f.js, "dup", "n1", 1, 0)
	state(t, f, "dup", calls(2))
	require.Eventually(t, func() bool { return w.Stats().Reports == 2 }, 5*time.Second, 5*time.Millisecond)
}

func TestWorkerKilledMidBatchNeitherLosesNorDoubleCounts(t *testing.T) {
	t.Parallel()
	f := setup(t, 1, time.Second)
	const before, total = 30, 200
	var crash atomic.Bool
	crashed := make(chan struct{})
	var once sync.Once
	_, nc1 := f.startWorker(t, "w1", nil, func(w *breaker.Worker) {
		breaker.SetCrashHook(w, func(int) bool {
			if crash.Load() {
				once.Do(func() { close(crashed) })
			}
			return crash.Load()
		})
	})
	for range before {
		report(t, f.js, "kill", "n1", 1, 0)
	}
	state(t, f, "kill", calls(before))
	// The next batch whose writes are done dies unacked: one of the reports
	// below, or the last of those above if its ack was still to come.
	crash.Store(true)
	for range total - before {
		report(t, f.js, "kill", "n1", 1, 0)
	}
	select {
	case <-crashed:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker never wrote a batch after the crash was armed")
	}
	nc1.Close()

	w2, _ := f.startWorker(t, "w2", nil)
	b := state(t, f, "kill", calls(total))
	require.Eventually(t, func() bool { return w2.Stats().Ignored > 0 }, 10*time.Second, 5*time.Millisecond,
		"the redelivered, already folded reports are skipped")
	for range 10 {
		report(t, f.js, "kill", "n1", 1, 0)
	}
	b = state(t, f, "kill", calls(total+10))
	require.EqualValues(t, total+10, b.Window.Successes)
}

func TestWorkerPartitionsSplitAndTakeOver(t *testing.T) {
	t.Parallel()
	f := setup(t, 8, topology.DefaultLeaseTTL)
	w1, _ := f.startWorker(t, "w1", nil)
	require.Len(t, w1.Owned(), 8)
	var crash atomic.Bool
	w2, nc2 := f.startWorker(t, "w2", nil, func(w *breaker.Worker) {
		breaker.SetCrashHook(w, func(int) bool { return crash.Load() })
	})
	require.Eventually(t, func() bool { return len(w1.Owned()) == 4 && len(w2.Owned()) == 4 }, 15*time.Second, 10*time.Millisecond, "w1 %v w2 %v", w1.Owned(), w2.Owned())

	services := make([]string, 0, 32)
	for i := range 32 {
		services = append(services, fmt.Sprintf("svc-%d", i))
	}
	for _, s := range services {
		report(t, f.js, s, "n1", 1, 0)
	}
	for _, s := range services {
		state(t, f, s, calls(1))
	}
	require.NotZero(t, w1.Stats().Reports)
	require.NotZero(t, w2.Stats().Reports)

	// w2 dies: no release, its leases expire.
	crash.Store(true)
	nc2.Close()
	died := time.Now()
	require.Eventually(t, func() bool { return len(w1.Owned()) == 8 }, 10*time.Second, 10*time.Millisecond, "w1 owns %v", w1.Owned())
	took := time.Since(died)
	t.Logf("takeover of a dead worker's partitions: %s (lease TTL %s)", took, topology.DefaultLeaseTTL)
	require.Less(t, took, 10*time.Second)
	for _, s := range services {
		report(t, f.js, s, "n1", 1, 0)
	}
	for _, s := range services {
		state(t, f, s, calls(2))
	}
}

func TestWorkerRejectsMalformedInput(t *testing.T) {
	t.Parallel()
	f := setup(t, 2, 2*time.Second)
	w, _ := f.startWorker(t, "w1", nil)
	ctx := context.Background()
	bad := []*nats.Msg{
		{Subject: events.MustOutcomeSubject("m"), Data: []byte(`{"successes":1}`)}, // no headers
		{Subject: events.MustOutcomeSubject("m"), Header: events.NewEnvelopeRandomID(events.TypeOutcome, "n1", time.Now()).Header(),
			Data: []byte(`{"successes":1,"bogus":2}`)},
		{Subject: events.MustControlSubject("m"), Header: events.NewEnvelopeRandomID(events.TypeControl, "n1", time.Now()).Header(),
			Data: []byte(`{"action":"explode","actor":"a","reason":"r"}`)},
		{Subject: "baldur.outcome.a.b", Header: events.NewEnvelopeRandomID(events.TypeOutcome, "n1", time.Now()).Header(),
			Data: []byte(`{"successes":1}`)},
		{Subject: events.SubjectGovernance, Header: events.NewEnvelopeRandomID(events.TypeGovernance, "n1", time.Now()).Header(),
			Data: []byte(`not json`)},
	}
	for _, m := range bad {
		_, err := f.js.PublishMsg(ctx, m)
		require.NoError(t, err)
	}
	report(t, f.js, "m", "n1", 1, 0)
	state(t, f, "m", calls(1))
	rej := eventsOf(t, f.js, events.FilterRejectedEvents, len(bad))
	require.Len(t, rej, len(bad))
	kinds := map[string]int{}
	for _, m := range rej {
		r, err := events.DecodeRejected(m.Data())
		require.NoError(t, err)
		kinds[string(r.Kind)]++
	}
	require.Equal(t, map[string]int{"outcome": 3, "control": 1, "governance": 1}, kinds)
	require.EqualValues(t, len(bad), w.Stats().Rejected)

	// Nothing is left unacknowledged.
	for p := range 2 {
		c, err := f.js.Consumer(ctx, topology.StreamInput, topology.ConsumerName(p))
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			info, err := c.Info(ctx)
			return err == nil && info.NumAckPending == 0 && info.NumPending == 0
		}, 5*time.Second, 10*time.Millisecond)
	}
}

func TestWorkerGracefulStopHandsOver(t *testing.T) {
	t.Parallel()
	f := setup(t, 4, 2*time.Second)
	w1, _ := f.startWorker(t, "w1", nil)
	report(t, f.js, "g", "n1", 1, 0)
	state(t, f, "g", calls(1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, w1.Stop(ctx))
	keys, err := f.top.Partitions.ListKeys(ctx)
	require.NoError(t, err)
	var left []string
	for k := range keys.Keys() {
		left = append(left, k)
	}
	require.Empty(t, left, "leases and presence are released")
	w2, _ := f.startWorker(t, "w2", nil)
	require.Len(t, w2.Owned(), 4, "a new worker takes every partition at once")
	report(t, f.js, "g", "n1", 1, 0)
	state(t, f, "g", calls(2))
}

func TestWorkerClusterSurvivesStoppedNode(t *testing.T) {
	t.Parallel()
	env := testenv.NATSCluster(t, 3)
	f := newFleet(t, env.JS, func(t *testing.T) *nats.Conn { return env.Connect(t) },
		topology.Config{Partitions: 2, Replicas: 3, LeaseTTL: 2 * time.Second})
	f.startWorker(t, "w1", nil)
	report(t, f.js, "c", "n1", 1, 0)
	state(t, f, "c", calls(1))
	env.StopNode(t, 2)
	env.WaitReady(t)
	var mu sync.Mutex
	published := 1
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		e := events.NewEnvelope(events.TypeOutcome, uuid.New(), "n1", time.Now())
		msg, err := events.NewMsg(events.MustOutcomeSubject("c"), e, events.OutcomeReport{Successes: 1})
		require.NoError(t, err)
		if _, err := f.js.PublishMsg(ctx, msg); err != nil {
			return false
		}
		mu.Lock()
		published++
		mu.Unlock()
		return true
	}, 30*time.Second, 100*time.Millisecond)
	b := state(t, f, "c", calls(int64(published)))
	require.EqualValues(t, published, b.Window.Successes)
}

// TestWorkerKeepsALeaseWhoseRenewalAnswerWasLost checks that a lease renewal
// stored by the cluster but whose answer never came back (its server went
// away) does not cost the partition: the next renewal finds the lease at a
// later revision holding this worker's name and renews from there, instead
// of dropping the partition and waiting for the lease to expire.
func TestWorkerKeepsALeaseWhoseRenewalAnswerWasLost(t *testing.T) {
	t.Parallel()
	f := setup(t, 1, 2*time.Second)
	var kv *lossyKV
	w, _ := f.startWorkerOn(t, "w1", nil, func(top *topology.Topology) {
		kv = &lossyKV{KeyValue: top.Partitions}
		top.Partitions = kv
	})
	require.Len(t, w.Owned(), 1)
	require.Eventually(t, func() bool { return w.Stats().Resets == 1 }, 10*time.Second, 5*time.Millisecond, "the partition opened")
	resets := w.Stats().Resets

	kv.loseUpdateAnswer.Store(true)
	require.Eventually(t, func() bool { return !kv.loseUpdateAnswer.Load() }, 10*time.Second, 5*time.Millisecond, "a renewal's answer lost")
	renewed := kv.updates.Load()
	require.Eventually(t, func() bool { return kv.updates.Load() >= renewed+2 }, 10*time.Second, 5*time.Millisecond, "two more renewals")
	require.Len(t, w.Owned(), 1)
	require.Equal(t, resets, w.Stats().Resets, "the partition was never dropped and opened again")

	report(t, f.js, "kept", "n1", 1, 0)
	state(t, f, "kept", calls(1))
}
