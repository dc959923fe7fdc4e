package fleetstate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

type fleet struct {
	env *testenv.NATSEnv
	top *topology.Topology
}

func newFleet(t testing.TB) fleet {
	t.Helper()
	env := testenv.NATS(t)
	top, err := topology.Ensure(context.Background(), env.JS, topology.Config{Partitions: 1, Storage: jetstream.MemoryStorage})
	require.NoError(t, err)
	return fleet{env: env, top: top}
}

// watch starts a view and stops it when the test ends.
func (f fleet) watch(t testing.TB, opts ...fleetstate.Option) *fleetstate.View {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := fleetstate.Watch(ctx, f.env.JS, opts...)
	require.NoError(t, err)
	t.Cleanup(v.Stop)
	return v
}

// tripped returns svc's breaker opened by failures at t0.
func tripped(svc string) domain.Breaker {
	env := domain.Env{Now: t0, Config: domain.DefaultConfig()}
	b, _ := domain.NewBreaker(svc).Apply(domain.ReportInput(domain.Report{Node: "n1", Successes: 4, Failures: 6, TrailingFailures: 6}), env)
	return b
}

// closedWith returns svc's closed breaker with a window of s successes and f
// failures.
func closedWith(svc string, s, f int64) domain.Breaker {
	env := domain.Env{Now: t0, Config: domain.DefaultConfig()}
	b, _ := domain.NewBreaker(svc).Apply(domain.ReportInput(domain.Report{Node: "n1", Successes: s, Failures: f}), env)
	return b
}

func (f fleet) put(t testing.TB, b domain.Breaker) uint64 {
	t.Helper()
	raw, err := json.Marshal(b)
	require.NoError(t, err)
	rev, err := f.top.Breakers.Put(context.Background(), b.Service, raw)
	require.NoError(t, err)
	return rev
}

// changes records every snapshot the view reports.
type changes struct {
	mu  sync.Mutex
	got []fleetstate.Snapshot
	c   chan struct{}
}

func record(t testing.TB, v *fleetstate.View) *changes {
	c := &changes{c: make(chan struct{}, 1)}
	cancel := v.OnChange(func(s fleetstate.Snapshot) {
		c.mu.Lock()
		c.got = append(c.got, s)
		c.mu.Unlock()
		select {
		case c.c <- struct{}{}:
		default:
		}
	})
	t.Cleanup(cancel)
	return c
}

// waitRev waits until a change of svc at revision rev or later was reported.
func (c *changes) waitRev(t testing.TB, svc string, rev uint64) fleetstate.Snapshot {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		for _, s := range c.got {
			if s.Service == svc && s.Revision >= rev {
				c.mu.Unlock()
				return s
			}
		}
		c.mu.Unlock()
		select {
		case <-c.c:
		case <-deadline:
			t.Fatalf("no change of %s at revision %d reported", svc, rev)
		}
	}
}

func TestWatchInitialLoad(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	revOpen := f.put(t, tripped("payments"))
	revClosed := f.put(t, closedWith("search", 9, 1))

	v := f.watch(t)
	require.Equal(t, 2, v.Len())

	s, ok := v.Snapshot("payments")
	require.True(t, ok)
	require.Equal(t, fleetstate.Snapshot{
		Service: "payments", State: domain.StateOpen, Mode: domain.ModeAuto, Generation: 1,
		RecoveryAt: t0.Add(time.Minute), Successes: 4, Failures: 6, Revision: revOpen,
	}, s)
	require.Equal(t, domain.DecisionDeny, s.Allows(t0))
	require.Equal(t, domain.DecisionAskPermit, s.Allows(t0.Add(time.Minute)))

	h := v.Handle("search")
	require.Same(t, h, v.Handle("search"), "one handle per service")
	require.Equal(t, "search", h.Service())
	require.Equal(t, revClosed, h.Load().Revision)
	require.Equal(t, domain.DecisionAllow, h.Load().Allows(t0))

	_, ok = v.Snapshot("unknown")
	require.False(t, ok)
	unknown := v.Handle("unknown")
	require.Nil(t, unknown.Load(), "no state yet")
	require.Equal(t, domain.DecisionAllow, unknown.Load().Allows(t0), "a nil snapshot is closed")

	require.InDelta(t, 7.0/20.0, v.AggregateFailureRate(), 1e-9)
	var seen []string
	for s := range v.All() {
		seen = append(seen, s.Service)
	}
	require.ElementsMatch(t, []string{"payments", "search"}, seen)
}

func TestWatchLiveUpdatesAndDeletion(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	v := f.watch(t)
	ch := record(t, v)
	h := v.Handle("payments") // created before the breaker exists
	require.Nil(t, h.Load())

	rev := f.put(t, closedWith("payments", 10, 0))
	s := ch.waitRev(t, "payments", rev)
	require.Equal(t, domain.StateClosed, s.State)
	require.Same(t, h, v.Handle("payments"))
	require.Equal(t, rev, h.Load().Revision)
	require.Zero(t, v.AggregateFailureRate())

	rev = f.put(t, tripped("payments"))
	s = ch.waitRev(t, "payments", rev)
	require.Equal(t, domain.StateOpen, s.State)
	require.Equal(t, domain.StateOpen, h.Load().State)
	require.InDelta(t, 0.6, v.AggregateFailureRate(), 1e-9, "the old window left the totals")

	for _, tc := range []struct {
		name string
		del  func(ctx context.Context, kv jetstream.KeyValue) error
	}{
		{"delete", func(ctx context.Context, kv jetstream.KeyValue) error { return kv.Delete(ctx, "payments") }},
		{"purge", func(ctx context.Context, kv jetstream.KeyValue) error { return kv.Purge(ctx, "payments") }},
	} {
		rev = f.put(t, tripped("payments"))
		ch.waitRev(t, "payments", rev)
		require.Equal(t, 1, v.Len(), tc.name)
		require.NoError(t, tc.del(context.Background(), f.top.Breakers), tc.name)
		s = ch.waitRev(t, "payments", rev+1)
		require.Equal(t, fleetstate.Snapshot{Service: "payments", State: domain.StateClosed, Mode: domain.ModeAuto, Revision: rev + 1}, s, tc.name)
		require.Nil(t, h.Load(), tc.name)
		_, ok := v.Snapshot("payments")
		require.False(t, ok, tc.name)
		require.Zero(t, v.Len(), tc.name)
		require.Zero(t, v.AggregateFailureRate(), tc.name)
		require.Same(t, h, v.Handle("payments"), "the handle outlives a deletion")
	}
}

func TestWatchIgnoresUndecodableState(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	v := f.watch(t)
	ch := record(t, v)
	rev := f.put(t, tripped("payments"))
	ch.waitRev(t, "payments", rev)

	ctx := context.Background()
	_, err := f.top.Breakers.Put(ctx, "payments", []byte("{not json"))
	require.NoError(t, err)
	_, err = f.top.Breakers.Put(ctx, "payments", mustJSON(t, tripped("search")))
	require.NoError(t, err)
	rev = f.put(t, closedWith("payments", 1, 0))
	ch.waitRev(t, "payments", rev)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	require.Len(t, ch.got, 2, "the two bad values were skipped")
	require.Equal(t, domain.StateClosed, ch.got[1].State)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return raw
}

// rejections collects rejected values.
type rejections struct {
	mu  sync.Mutex
	got []events.Rejected
}

func (r *rejections) add(x events.Rejected) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, x)
}

func (r *rejections) list() []events.Rejected {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Rejected(nil), r.got...)
}

// eventually waits for cond, polling: config and governance have no change
// listener.
func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 2*time.Millisecond, msg)
}

func TestConfigLayeringLive(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	ctx := context.Background()
	_, err := f.top.ConfigKV.Put(ctx, domain.ConfigDefaultsKey, []byte(`{"failure_threshold": 7}`))
	require.NoError(t, err)
	_, err = f.top.ConfigKV.Put(ctx, "payments", []byte(`{"minimum_calls": 3}`))
	require.NoError(t, err)

	var rej rejections
	v := f.watch(t, fleetstate.WithRejected(rej.add))
	want := domain.DefaultConfig()
	want.FailureThreshold = 7
	require.Equal(t, want, v.Config("search"), "built-in, then _defaults")
	want.MinimumCalls = 3
	require.Equal(t, want, v.Config("payments"), "built-in, then _defaults, then the service")

	// A new _defaults applies under the service's own object.
	_, err = f.top.ConfigKV.Put(ctx, domain.ConfigDefaultsKey, []byte(`{"failure_threshold": 9, "half_open_max_calls": 5}`))
	require.NoError(t, err)
	eventually(t, func() bool { return v.Config("payments").FailureThreshold == 9 }, "new defaults under payments")
	require.Equal(t, 3, v.Config("payments").MinimumCalls)
	require.Equal(t, 5, v.Config("search").HalfOpenMaxCalls)

	// A service's object changes live and goes away with its key.
	_, err = f.top.ConfigKV.Put(ctx, "payments", []byte(`{"minimum_calls": 4}`))
	require.NoError(t, err)
	eventually(t, func() bool { return v.Config("payments").MinimumCalls == 4 }, "payments updated")
	require.NoError(t, f.top.ConfigKV.Delete(ctx, "payments"))
	eventually(t, func() bool { return v.Config("payments").MinimumCalls == 10 }, "payments deleted")
	require.Equal(t, 9, v.Config("payments").FailureThreshold)

	// Without _defaults the built-in defaults are back.
	require.NoError(t, f.top.ConfigKV.Purge(ctx, domain.ConfigDefaultsKey))
	eventually(t, func() bool { return v.Config("search") == domain.DefaultConfig() }, "defaults purged")
	require.Empty(t, rej.list())
}

func TestConfigInvalidReportedAndIgnored(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, key, value string
		wantErr          string
	}{
		{"not an object", "payments", `[1, 2]`, "must be a JSON object"},
		{"unknown field", "payments", `{"failure_treshold": 3}`, `"failure_treshold"`},
		{"out of range", "payments", `{"half_open_max_calls": 0}`, "half_open_max_calls is 0"},
		{"wrong type", "payments", `{"window": 60}`, "window"},
		{"invalid defaults", domain.ConfigDefaultsKey, `{"minimum_calls": -1}`, "minimum_calls is -1"},
		{"invalid key", "bad.key", `{"minimum_calls": 3}`, "neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFleet(t)
			ctx := context.Background()
			_, err := f.top.ConfigKV.Put(ctx, domain.ConfigDefaultsKey, []byte(`{"failure_threshold": 7}`))
			require.NoError(t, err)
			_, err = f.top.ConfigKV.Put(ctx, "payments", []byte(`{"minimum_calls": 3}`))
			require.NoError(t, err)
			var rej rejections
			v := f.watch(t, fleetstate.WithRejected(rej.add), fleetstate.WithClock(func() time.Time { return t0 }))
			before := v.Config("payments")
			beforeOther := v.Config("search")

			_, err = f.top.ConfigKV.Put(ctx, tc.key, []byte(tc.value))
			require.NoError(t, err)
			eventually(t, func() bool { return len(rej.list()) == 1 }, "rejection reported")
			r := rej.list()[0]
			require.Equal(t, events.RejectedConfig, r.Kind)
			require.Equal(t, "$KV.baldur_config."+tc.key, r.Subject)
			require.Contains(t, r.Reason, tc.wantErr)
			require.Equal(t, len(tc.value), r.Size)
			require.Equal(t, t0, r.At)
			require.NoError(t, r.Validate())
			require.Equal(t, before, v.Config("payments"), "the last valid config stays")
			require.Equal(t, beforeOther, v.Config("search"))

			// A later valid value applies again.
			_, err = f.top.ConfigKV.Put(ctx, "payments", []byte(`{"minimum_calls": 5}`))
			require.NoError(t, err)
			eventually(t, func() bool { return v.Config("payments").MinimumCalls == 5 }, "valid again")
			require.Equal(t, 7, v.Config("payments").FailureThreshold)
		})
	}
}

func TestConfigInvalidAtLoadFallsBackToDefaults(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	ctx := context.Background()
	_, err := f.top.ConfigKV.Put(ctx, "payments", []byte(`{"success_threshold": 50}`))
	require.NoError(t, err)
	var rej rejections
	v := f.watch(t, fleetstate.WithRejected(rej.add))
	require.Len(t, rej.list(), 1, "reported during the initial load")
	require.Equal(t, domain.DefaultConfig(), v.Config("payments"))
}

func TestGovernanceUpdates(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	ctx := context.Background()
	kv := f.top.Governance
	_, err := kv.Put(ctx, string(events.GovernanceEmergencyLevel), []byte(`{"level": 1, "actor": "sre"}`))
	require.NoError(t, err)
	var rej rejections
	v := f.watch(t, fleetstate.WithRejected(rej.add))
	require.Equal(t, domain.EmergencyLevel1, v.Governance().Emergency.Level)
	require.False(t, v.Governance().KillSwitch.Active)

	_, err = kv.Put(ctx, string(events.GovernanceKillSwitch), []byte(`{"active": true, "actor": "sre", "reason": "incident"}`))
	require.NoError(t, err)
	eventually(t, func() bool { return v.Governance().KillSwitch.Active }, "kill switch on")
	require.Equal(t, "incident", v.Governance().KillSwitch.Reason)

	_, err = kv.Put(ctx, string(events.GovernanceErrorBudget), []byte(`{"enabled": true, "slo_target": 0.999, "remaining": 0.05}`))
	require.NoError(t, err)
	eventually(t, func() bool { return v.Governance().ErrorBudget.Enabled }, "error budget")
	require.False(t, v.Governance().CheckReplay().Allowed)

	// Invalid values are reported and ignored.
	for _, bad := range []struct{ key, value string }{
		{string(events.GovernanceEmergencyLevel), `{"level": 7}`},
		{string(events.GovernanceKillSwitch), `{"active": "yes"}`},
		{string(events.GovernanceKillSwitch), `{"active": false, "extra": 1}`},
		{string(events.GovernanceErrorBudget), `{"enabled": true, "slo_target": 2, "remaining": 0.5}`},
	} {
		_, err = kv.Put(ctx, bad.key, []byte(bad.value))
		require.NoError(t, err)
	}
	eventually(t, func() bool { return len(rej.list()) == 4 }, "four rejections")
	for _, r := range rej.list() {
		require.Equal(t, events.RejectedGovernance, r.Kind)
		require.Contains(t, r.Reason, "invalid governance value")
	}
	g := v.Governance()
	require.Equal(t, domain.EmergencyLevel1, g.Emergency.Level)
	require.True(t, g.KillSwitch.Active)
	require.InDelta(t, 0.05, g.ErrorBudget.Remaining, 1e-12)

	// Other keys are skipped; a deleted key is off.
	_, err = kv.Put(ctx, "aggregate", []byte(`{"anything": true}`))
	require.NoError(t, err)
	require.NoError(t, kv.Delete(ctx, string(events.GovernanceKillSwitch)))
	eventually(t, func() bool { return !v.Governance().KillSwitch.Active }, "kill switch deleted")
	require.Len(t, rej.list(), 4)
}

func TestWatchWithout(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	ctx := context.Background()
	_, err := f.top.ConfigKV.Put(ctx, domain.ConfigDefaultsKey, []byte(`{"failure_threshold": 7}`))
	require.NoError(t, err)
	_, err = f.top.Governance.Put(ctx, string(events.GovernanceKillSwitch), []byte(`{"active": true}`))
	require.NoError(t, err)
	v := f.watch(t, fleetstate.WithoutConfig(), fleetstate.WithoutGovernance())
	require.Equal(t, domain.DefaultConfig(), v.Config("payments"))
	require.False(t, v.Governance().KillSwitch.Active)
}

func TestManyKeys(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	const n = 3000
	putMany(t, f, 0, n)
	v := f.watch(t)
	require.Equal(t, n, v.Len())
	for i := range n {
		s, ok := v.Snapshot(svcName(i))
		require.True(t, ok)
		require.Equal(t, domain.StateOpen, s.State)
	}

	// New services during the watch: readable at once, promoted later.
	ch := record(t, v)
	putMany(t, f, n, n+500)
	ch.waitRev(t, svcName(n+499), 1)
	require.Equal(t, n+500, v.Len())
	handles := map[string]*fleetstate.Handle{}
	for i := range n + 600 {
		handles[svcName(i)] = v.Handle(svcName(i))
	}
	for svc, h := range handles {
		require.Same(t, h, v.Handle(svc), svc)
	}
	count := 0
	for range v.All() {
		count++
	}
	require.Equal(t, n+500, count)
}

func svcName(i int) string { return fmt.Sprintf("svc-%06d", i) }

// putMany writes breakers svcName(from) … svcName(to-1) with async publishes.
func putMany(t testing.TB, f fleet, from, to int) {
	t.Helper()
	js := f.env.JS
	template := mustJSON(t, tripped("SERVICE"))
	for i := from; i < to; i++ {
		svc := svcName(i)
		val := bytes.ReplaceAll(template, []byte("SERVICE"), []byte(svc))
		_, err := js.PublishAsync("$KV."+topology.BucketBreakers+"."+svc, val)
		require.NoError(t, err)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		t.Fatal("async publishes not acknowledged")
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	v := f.watch(t)
	ch := record(t, v)
	rev := f.put(t, tripped("payments"))
	ch.waitRev(t, "payments", rev)
	v.Stop()
	v.Stop()
	f.put(t, closedWith("payments", 1, 0))
	// A second view sees the write; the stopped one keeps its last state.
	v2 := f.watch(t)
	s, _ := v2.Snapshot("payments")
	require.Equal(t, domain.StateClosed, s.State)
	s, _ = v.Snapshot("payments")
	require.Equal(t, domain.StateOpen, s.State)
}

func TestWatchErrors(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	_, err := fleetstate.Watch(context.Background(), env.JS)
	require.ErrorIs(t, err, fleetstate.ErrNoBucket)
	require.ErrorContains(t, err, topology.BucketBreakers)

	f := newFleet(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = fleetstate.Watch(ctx, f.env.JS)
	require.ErrorIs(t, err, context.Canceled)
}

func TestConfigLeavesOtherFleetSettingsAlone(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	ctx := context.Background()
	// "_sla" and "_cells" are the watchdog's settings, not breaker config.
	_, err := f.top.ConfigKV.Put(ctx, "_sla", []byte(`{"default_hours": 12}`))
	require.NoError(t, err)
	_, err = f.top.ConfigKV.Put(ctx, "_cells", []byte(`{"cells": []}`))
	require.NoError(t, err)
	var rej rejections
	v := f.watch(t, fleetstate.WithRejected(rej.add))
	require.Empty(t, rej.list(), "fleet settings are not refused as bad service names")
	require.Equal(t, domain.DefaultConfig(), v.Config("payments"))
}
