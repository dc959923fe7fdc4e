package cli_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/cli"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/opsclient/opstest"
	"github.com/baldurfleet/baldur/internal/topology"
)

// TestNotAppliedMeansNotApplied is issue 14's case 3: with no breaker-worker
// running, `breaker open` and `governance kill-switch on` exit 1 "not
// applied"; the breaker-worker that starts a minute later (here: at once)
// refuses both as expired instead of applying them.
func TestNotAppliedMeansNotApplied(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)
	r := run(t, cmd(f, "breaker", "open", "payments", "--reason", "vendor down", "--timeout", "1s")...)
	require.Equal(t, cli.ExitFailed, r.code, r.stdout)
	require.Contains(t, r.stderr, "none will apply it later")
	r = run(t, cmd(f, "governance", "kill-switch", "on", "--reason", "INC-1", "--timeout", "1s")...)
	require.Equal(t, cli.ExitFailed, r.code, r.stdout)
	require.Contains(t, r.stderr, "none will apply it later")

	f.StartBreakerWorker(t, "late")
	ctx := t.Context()
	codes := map[events.RejectedKind]string{}
	require.Eventually(t, func() bool {
		c, err := f.NATS.JS.OrderedConsumer(ctx, topology.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.FilterRejectedEvents}})
		if err != nil {
			return false
		}
		batch, err := c.Fetch(10, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			return false
		}
		for m := range batch.Messages() {
			if rej, err := events.DecodeRejected(m.Data()); err == nil {
				codes[rej.Kind] = rej.Code + ": " + rej.Reason
			}
		}
		return len(codes) == 2
	}, opstest.WaitFor, 50*time.Millisecond, "the late worker refuses both: %v", codes)
	for _, kind := range []events.RejectedKind{events.RejectedControl, events.RejectedGovernance} {
		require.True(t, strings.HasPrefix(codes[kind], breaker.CodeCommandExpired+": "), "%s: %s", kind, codes[kind])
	}

	r = run(t, cmd(f, "breaker", "get", "payments", "--json")...)
	if r.code == cli.ExitOK {
		require.NotContains(t, r.stdout, string(domain.ModeForcedOpen), "the expired open was not applied")
	}
	r = run(t, cmd(f, "governance", "status", "--json")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Regexp(t, `"kill_switch":\s*\{[^}]*"active":\s*false`, r.stdout, "the expired kill switch was not applied")
}
