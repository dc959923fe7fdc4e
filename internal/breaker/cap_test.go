package breaker_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/topology"
)

// startCappedWorker starts a worker on its own connection with MaxBreakers
// max; the fleet's view counts the live breakers. It is stopped when the
// test ends.
func (f *fleet) startCappedWorker(t *testing.T, node string, now func() time.Time, max int) *breaker.Worker {
	t.Helper()
	nc := f.conn(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	top, err := topology.Ensure(context.Background(), js, f.top.Config)
	require.NoError(t, err)
	w, err := breaker.New(js, breaker.Config{
		Topology: top, Node: node, Configs: f.view, Governance: f.view, Clock: now, MaxBreakers: max,
		Logger: slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	require.NoError(t, err)
	require.NoError(t, w.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w
}

// publishWithID publishes payload on subj with ce-id id.
func publishWithID(t *testing.T, js jetstream.JetStream, subj string, typ events.Type, payload any) string {
	t.Helper()
	env := events.NewEnvelopeRandomID(typ, "node-a", time.Now())
	publish(t, js, subj, env, payload)
	return env.ID
}

// rejectedWith waits for the rejected event of kind whose ce-id is id.
func rejectedWith(t *testing.T, js jetstream.JetStream, kind events.RejectedKind, id string) events.Rejected {
	t.Helper()
	subj, err := events.RejectedSubject(kind)
	require.NoError(t, err)
	var found *events.Rejected
	require.Eventually(t, func() bool {
		for _, m := range eventsOf(t, js, subj, 0) {
			r, err := events.DecodeRejected(m.Data())
			require.NoError(t, err)
			if r.CEID == id {
				found = &r
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "no rejected event for %s", id)
	return *found
}

// TestWorkerBreakerCap caps the fleet at three breakers: inputs for a fourth
// name are rejected (code breaker_cap, kind outcome or control, the cap and
// its flag in the reason), terminated and counted, and create nothing; the
// three existing breakers fold as ever; archiving one frees room for the
// fourth.
func TestWorkerBreakerCap(t *testing.T) {
	t.Parallel()
	f := setup(t, 2, 0)
	clk := newClock()
	w := f.startCappedWorker(t, "w1", clk.Now, 3)
	ctx := context.Background()

	for _, svc := range []string{"a", "b", "c"} {
		report(t, f.js, svc, "node-a", 1, 0)
		state(t, f, svc, calls(1))
	}
	require.Eventually(t, func() bool { return f.view.Len() == 3 }, 10*time.Second, 5*time.Millisecond,
		"the worker's view counts the three")

	repID := publishWithID(t, f.js, events.MustOutcomeSubject("d"), events.TypeOutcome, events.OutcomeReport{Successes: 1})
	cmdID := publishWithID(t, f.js, events.MustControlSubject("e"), events.TypeControl,
		events.BreakerCommand{Action: domain.ActionOpen, Actor: "sre", Reason: "maintenance"})

	r := rejectedWith(t, f.js, events.RejectedOutcome, repID)
	require.Equal(t, breaker.CodeBreakerCap, r.Code)
	require.Equal(t, events.MustOutcomeSubject("d"), r.Subject)
	require.Equal(t, string(events.TypeOutcome), r.CEType)
	require.Contains(t, r.Reason, "d has no breaker")
	require.Contains(t, r.Reason, "3 live breakers, at most 3")
	require.Contains(t, r.Reason, "--max-breakers")
	r = rejectedWith(t, f.js, events.RejectedControl, cmdID)
	require.Equal(t, breaker.CodeBreakerCap, r.Code)
	require.Equal(t, string(events.TypeControl), r.CEType)

	for _, svc := range []string{"d", "e"} {
		_, err := f.top.Breakers.Get(ctx, svc)
		require.ErrorIs(t, err, jetstream.ErrKeyNotFound, "%s gets no breaker", svc)
	}

	// Existing breakers keep folding at the cap.
	report(t, f.js, "a", "node-a", 1, 0)
	state(t, f, "a", calls(2))
	require.EqualValues(t, 2, w.Stats().BreakerCap)

	// The refused inputs were terminated, not left to be redelivered: once
	// the partitions have acknowledged everything, nothing is pending.
	require.Eventually(t, func() bool {
		for p := range f.top.Config.Partitions {
			c, err := f.js.Consumer(ctx, topology.StreamInput, topology.ConsumerName(p))
			if err != nil {
				return false
			}
			info, err := c.Info(ctx)
			if err != nil || info.NumAckPending != 0 || info.NumPending != 0 {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond)
	require.EqualValues(t, 2, w.Stats().BreakerCap, "no redelivery, no second refusal")

	// Archiving an idle breaker frees room.
	clk.Advance(8 * 24 * time.Hour)
	command(t, f.js, "b", events.BreakerCommand{Action: domain.ActionArchive, Trigger: domain.TriggerIdle,
		TTL: domain.Duration(7 * 24 * time.Hour), Actor: "wd-1", Reason: "idle for a week"})
	require.Eventually(t, func() bool { return f.view.Len() == 2 }, 10*time.Second, 5*time.Millisecond)
	report(t, f.js, "d", "node-a", 1, 0)
	state(t, f, "d", calls(1))
	require.EqualValues(t, 2, w.Stats().BreakerCap)
	require.EqualValues(t, 1, w.Stats().Archived)
}

// TestWorkerConfigBreakerCap checks the cap's config: 0 is the default, a
// negative cap is refused, and without a counter of breakers the worker is
// refused.
func TestWorkerConfigBreakerCap(t *testing.T) {
	t.Parallel()
	f := setup(t, 1, 0)
	_, err := breaker.New(f.js, breaker.Config{Topology: f.top, Node: "w", Configs: f.view, Governance: f.view, MaxBreakers: -1})
	require.ErrorIs(t, err, breaker.ErrInvalidWorkerConfig)
	_, err = breaker.New(f.js, breaker.Config{Topology: f.top, Node: "w", Configs: fixedConfig{}, Governance: f.view})
	require.ErrorIs(t, err, breaker.ErrInvalidWorkerConfig)
	require.ErrorContains(t, err, "BreakerCounter")
	_, err = breaker.New(f.js, breaker.Config{Topology: f.top, Node: "w", Configs: fixedConfig{}, Governance: f.view, Breakers: f.view})
	require.NoError(t, err)
}

// fixedConfig resolves every service to the built-in defaults and counts no
// breakers.
type fixedConfig struct{}

func (fixedConfig) Config(string) domain.Config { return domain.DefaultConfig() }
