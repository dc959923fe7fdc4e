//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baldurfleet/baldur"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/topology"
)

// Configs of the scenarios' services.
const (
	// countConfig never trips on the reports the scenarios send (at least
	// one success each, failures below 100%), and keeps every report of the
	// scenario in its window: the window's totals are the folded totals.
	countConfig = `{"window":"1h","failure_rate_threshold":100,"failure_threshold":1000000}`
	// replayConfig drains due dead letters while the breaker is closed.
	replayConfig = `{"auto_replay":"continuous"}`
)

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// replayVerdict is a sink's deterministic handler: by the seed, the entry
// and the attempt, a delivery fails (retryable) one time in four and
// permanently one time in seventeen.
func replayVerdict(seed int64) func(id string, attempt int) error {
	return func(id string, attempt int) error {
		hash := fnv.New64a()
		_, _ = fmt.Fprintf(hash, "%d/%s/%d", seed, id, attempt)
		switch v := hash.Sum64(); {
		case v%17 == 0:
			return baldur.Permanent(errors.New("chaos: permanent failure"))
		case v%4 == 0:
			return errors.New("chaos: transient failure")
		}
		return nil
	}
}

// countReports returns n reports over svcs, with seeded counts.
func countReports(h *Harness, svcs []string, n int) []Report {
	out := make([]Report, n)
	for i := range out {
		out[i] = Report{Service: svcs[h.IntN(len(svcs))], Successes: int64(1 + h.IntN(5)), Failures: int64(h.IntN(3))}
	}
	return out
}

func flipCommand(open bool) events.BreakerCommand {
	if open {
		return events.BreakerCommand{Action: domain.ActionOpen, Actor: "chaos", Reason: "flip"}
	}
	return events.BreakerCommand{Action: domain.ActionClose, Actor: "chaos", Reason: "flip"}
}

// flipCommands forces svcs open and closed, each in turn, one command every
// `every`, until loadCtx ends, counting in n each one JetStream acknowledged.
func flipCommands(loadCtx, ctx context.Context, h *Harness, svcs []string, every time.Duration, n *atomic.Int64) error {
	for i := 0; loadCtx.Err() == nil; i++ {
		if _, err := h.Command(ctx, h.JS, svcs[i%len(svcs)], flipCommand((i/len(svcs))%2 == 0)); err != nil {
			return err
		}
		n.Add(1)
		_ = pause(loadCtx, every)
	}
	return nil
}

// submitLetters submits dead letters to svcs in turn (max_retries 3), one
// every `every`, until loadCtx ends.
func submitLetters(loadCtx, ctx context.Context, letters *DeadLetters, svcs []string, every time.Duration) error {
	for i := 0; loadCtx.Err() == nil; i++ {
		if _, err := letters.Submit(ctx, svcs[i%len(svcs)], i, 3); err != nil {
			return err
		}
		_ = pause(loadCtx, every)
	}
	return nil
}

// settle waits until the fleet folded every acknowledged report and no
// dead letter of dl is pending or replaying; it records a violation for
// what never settles.
func settle(ctx context.Context, h *Harness, reports *Reports, dl []string, within time.Duration) {
	acked := reports.AckedAll()
	if !h.Until(within, 100*time.Millisecond, func() bool { return h.FoldedEqual(ctx, acked) }) {
		h.Violation("reports not all folded %s after the load stopped", within)
	}
	if len(dl) == 0 {
		return
	}
	// A dead letter a killed worker fetched and never acknowledged comes
	// back after the ingest consumer's ack wait.
	want := int64(len(h.AckedDeadLetters()))
	var stored int64
	if !h.Until(within+topology.ReplayIngestAckWait, 100*time.Millisecond, func() bool {
		n, err := h.Stored(ctx, dl)
		stored = n
		return err == nil && n >= want
	}) {
		h.Violation("%d of %d acknowledged dead letters in PostgreSQL %s after the load stopped", stored, want, within+topology.ReplayIngestAckWait)
	}
	var left int64
	if !h.Until(within, 100*time.Millisecond, func() bool {
		n, err := h.Unsettled(ctx, dl)
		left = n
		return err == nil && n == 0
	}) {
		h.Violation("%d dead letters still pending or replaying %s after the load stopped", left, within)
	}
}

// mustNotFail stops the test when the load could not be delivered at all:
// that is a broken harness or fleet, not a counted violation.
func mustNotFail(t *testing.T, errs <-chan error) {
	t.Helper()
	for err := range errs {
		if err != nil {
			t.Fatalf("chaos: load: %v", err)
		}
	}
}

func since(start time.Time) string { return time.Since(start).Round(time.Millisecond).String() }
