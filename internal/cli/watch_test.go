package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/cli"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/opsclient/opstest"
	"github.com/baldurfleet/baldur/internal/testenv"
)

// TestBreakerWatchPrintsChangesAndFailsWhenNATSGoes: a quiet service whose
// breaker is rewritten at every fold is one line; a transition is another;
// losing the connection to NATS ends the watch with exit 3 and says why.
func TestBreakerWatchPrintsChangesAndFailsWhenNATSGoes(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)
	f.StartBreakerWorker(t, "bw")
	var out, errOut testenv.Buffer
	code := make(chan int, 1)
	go func() {
		code <- cli.RunEnv(context.Background(), []string{"breaker", "watch", "--nats-url", f.URL}, &out, &errOut, func(string) string { return "" })
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "watching breakers") }, opstest.WaitFor, 10*time.Millisecond)

	kv := f.Topology.Breakers
	var rev uint64
	for i := range 10 {
		msg, err := events.NewMsg(events.MustOutcomeSubject("quiet"), events.NewEnvelopeRandomID(events.TypeOutcome, "test", time.Now()),
			events.OutcomeReport{Successes: 1})
		require.NoError(t, err)
		_, err = f.NATS.JS.PublishMsg(t.Context(), msg)
		require.NoError(t, err)
		// One fold (one write of the breaker) per report.
		require.Eventually(t, func() bool {
			e, err := kv.Get(t.Context(), "quiet")
			if err != nil || e.Revision() == rev {
				return false
			}
			b, err := breaker.DecodeState("quiet", e.Value())
			if err != nil || b.Window.Successes < int64(i+1) {
				return false
			}
			rev = e.Revision()
			return true
		}, opstest.WaitFor, 5*time.Millisecond)
	}
	require.Eventually(t, func() bool { return strings.Count(out.String(), "quiet") == 1 }, opstest.WaitFor, 10*time.Millisecond)

	cmd, err := events.NewMsg(events.MustControlSubject("quiet"), events.NewEnvelopeRandomID(events.TypeControl, "test", time.Now()),
		events.BreakerCommand{Action: domain.ActionOpen, Actor: "sre", Reason: "test"})
	require.NoError(t, err)
	_, err = f.NATS.JS.PublishMsg(t.Context(), cmd)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "forced_open") }, opstest.WaitFor, 10*time.Millisecond)
	require.Equal(t, 2, strings.Count(out.String(), "quiet"), "ten folds and a transition are two lines:\n%s", out.String())

	// The server drops the CLI's connection (as a restart would).
	srv := f.NATS.Server.Server()
	connz, err := srv.Connz(&server.ConnzOptions{})
	require.NoError(t, err)
	kicked := false
	for _, c := range connz.Conns {
		if c.Name == "baldur-cli" {
			require.NoError(t, srv.DisconnectClientByID(c.Cid))
			kicked = true
		}
	}
	require.True(t, kicked, "the watch's connection")
	select {
	case c := <-code:
		require.Equal(t, cli.ExitUnreachable, c)
		require.Contains(t, errOut.String(), "the connection to NATS was lost")
	case <-time.After(opstest.WaitFor):
		t.Fatal("breaker watch still runs after NATS went away")
	}
}
