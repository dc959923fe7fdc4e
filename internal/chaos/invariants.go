//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/topology"
)

// Breakers returns the stored breaker of every service in svcs (a missing
// one is the zero Breaker).
func (h *Harness) Breakers(ctx context.Context, svcs []string) (map[string]domain.Breaker, error) {
	st := breaker.NewStateStore(h.Top.Breakers, h.JS, "chaos-checker", nil)
	out := make(map[string]domain.Breaker, len(svcs))
	for _, svc := range svcs {
		b, _, err := st.Get(ctx, svc)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, err
		}
		out[svc] = b
	}
	return out, nil
}

// TransitionEvents reads every breaker transition event stored in
// BALDUR_EVENTS and counts them by service and generation.
func (h *Harness) TransitionEvents(ctx context.Context) (map[string]map[uint64]int, int, error) {
	const filter = "baldur.event.breaker.>"
	// How many the stream holds, from its leader: a consumer on a follower
	// that has not applied the latest yet would come back short, and one
	// fetch that finds nothing for a second is no proof of the end.
	var want int
	var c jetstream.Consumer
	err := h.retryTransient(ctx, func(ctx context.Context) error {
		s, err := h.JS.Stream(ctx, topology.StreamEvents)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
		if err != nil {
			return err
		}
		want = 0
		for _, n := range info.State.Subjects {
			want += int(n)
		}
		c, err = h.JS.OrderedConsumer(ctx, topology.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	out := map[string]map[uint64]int{}
	n, read := 0, 0
	for read < want {
		if err := ctx.Err(); err != nil {
			return nil, 0, fmt.Errorf("read %d of the %d transition events: %w", read, want, err)
		}
		batch, err := c.Fetch(min(1000, want-read), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, 0, err
		}
		for m := range batch.Messages() {
			read++
			if strings.HasSuffix(m.Subject(), ".archived") {
				continue
			}
			ev, err := events.DecodeTransitionEvent(m.Data())
			if err != nil {
				h.Violation("undecodable transition event on %s: %v", m.Subject(), err)
				continue
			}
			if out[ev.Service] == nil {
				out[ev.Service] = map[uint64]int{}
			}
			out[ev.Service][ev.Generation]++
			n++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return nil, 0, err
		}
	}
	return out, n, nil
}

// retryTransient runs f until it succeeds, fails with an error that is not
// a request the cluster lost for the moment (no responders, a timeout), or
// ctx ends; each try is bounded by five seconds.
func (h *Harness) retryTransient(ctx context.Context, f func(ctx context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := f(actx)
		cancel()
		if err == nil || ctx.Err() != nil ||
			!(errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// CheckTransitions checks guarantee 2 for svcs: every stored breaker has no
// transition left unpublished, and its generations 1..G each have exactly
// one transition event, none beyond G. It returns the number of events.
func (h *Harness) CheckTransitions(ctx context.Context, svcs []string) int {
	h.tb.Helper()
	// A worker killed between a breaker write and the publish of its
	// transitions leaves them pending in the bucket; the inputs it had not
	// acknowledged come back to the next owner after the partition
	// consumer's ack wait, which publishes them. Wait that long, and a
	// margin, before calling any of them lost.
	var states map[string]domain.Breaker
	h.Until(topology.PartitionAckWait+15*time.Second, 100*time.Millisecond, func() bool {
		var err error
		states, err = h.Breakers(ctx, svcs)
		if err != nil {
			return false
		}
		for _, b := range states {
			if len(b.PendingEvents) > 0 {
				return false
			}
		}
		return true
	})
	states, err := h.Breakers(ctx, svcs)
	if err != nil {
		h.tb.Fatalf("chaos: read breakers: %v", err)
	}
	evs, n, err := h.TransitionEvents(ctx)
	if err != nil {
		h.tb.Fatalf("chaos: read transition events: %v", err)
	}
	for _, svc := range svcs {
		b := states[svc]
		if len(b.PendingEvents) > 0 {
			h.Violation("%s: %d transitions written but never published", svc, len(b.PendingEvents))
		}
		got := evs[svc]
		for g := uint64(1); g <= b.Generation; g++ {
			if got[g] != 1 {
				h.Violation("%s: generation %d has %d transition events, want exactly 1", svc, g, got[g])
			}
		}
		for g, c := range got {
			if g > b.Generation || g == 0 {
				h.Violation("%s: %d transition events for generation %d, beyond the stored generation %d", svc, c, g, b.Generation)
			}
		}
	}
	return n
}

// CheckFolded checks guarantee 3: the window of every service in want
// holds exactly the acknowledged report totals (the services' windows must
// be longer than the scenario and their breakers must not transition).
func (h *Harness) CheckFolded(ctx context.Context, want map[string]Outcomes) {
	h.tb.Helper()
	svcs := make([]string, 0, len(want))
	for svc := range want {
		svcs = append(svcs, svc)
	}
	states, err := h.Breakers(ctx, svcs)
	if err != nil {
		h.tb.Fatalf("chaos: read breakers: %v", err)
	}
	for svc, w := range want {
		got := states[svc].Window.WindowStats
		if got.Successes != w.Successes || got.Failures != w.Failures {
			h.Violation("%s: folded %d successes and %d failures, published %d and %d",
				svc, got.Successes, got.Failures, w.Successes, w.Failures)
		}
	}
}

// FoldedEqual reports whether every service in want holds exactly its
// acknowledged totals now (for waiting until the fleet caught up).
func (h *Harness) FoldedEqual(ctx context.Context, want map[string]Outcomes) bool {
	svcs := make([]string, 0, len(want))
	for svc := range want {
		svcs = append(svcs, svc)
	}
	states, err := h.Breakers(ctx, svcs)
	if err != nil {
		return false
	}
	for svc, w := range want {
		got := states[svc].Window.WindowStats
		if got.Successes != w.Successes || got.Failures != w.Failures {
			return false
		}
	}
	return true
}

// Unsettled counts the entries of svcs that are pending or replaying.
func (h *Harness) Unsettled(ctx context.Context, svcs []string) (int64, error) {
	counts, err := h.Store.Counts(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, svc := range svcs {
		n += counts[svc][domain.DLQPending] + counts[svc][domain.DLQReplaying]
	}
	return n, nil
}

// Stored counts the entries of svcs in PostgreSQL, whatever their status.
func (h *Harness) Stored(ctx context.Context, svcs []string) (int64, error) {
	counts, err := h.Store.Counts(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, svc := range svcs {
		for _, c := range counts[svc] {
			n += c
		}
	}
	return n, nil
}

// CheckDeadLetters checks guarantee 6 for the acknowledged dead letters
// (id → service): each is in PostgreSQL exactly once, in a status final
// accepts; an entry replayed had a successful delivery. It returns the
// number of entries checked.
func (h *Harness) CheckDeadLetters(ctx context.Context, acked map[string]string, sink *ReplaySink, final func(domain.DLQStatus) bool) int64 {
	h.tb.Helper()
	perSvc := map[string]int64{}
	missing := 0
	for id, svc := range acked {
		perSvc[svc]++
		e, err := h.Store.Get(ctx, id)
		if err != nil {
			h.Violation("acknowledged dead letter %s of %s not in PostgreSQL: %v", id, svc, err)
			missing++
			continue
		}
		if !final(e.Status) {
			h.Violation("entry %s of %s ended %s", id, svc, e.Status)
		}
		if sink != nil && e.Status == domain.DLQReplayed && sink.Succeeded(id) == 0 {
			h.Violation("entry %s of %s is replayed but its handler never succeeded", id, svc)
		}
	}
	if missing > 0 {
		h.describeIngest(ctx, missing)
	}
	counts, err := h.Store.Counts(ctx)
	if err != nil {
		h.tb.Fatalf("chaos: DLQ counts: %v", err)
	}
	var total int64
	for svc, want := range perSvc {
		var got int64
		for _, c := range counts[svc] {
			got += c
		}
		if got != want {
			h.Violation("%s: %d entries in PostgreSQL, %d dead letters acknowledged", svc, got, want)
		}
		total += got
	}
	return total
}

// describeIngest logs where missing dead letters could be: what the ingest
// consumer still holds on BALDUR_DLQ, and which PostgreSQL server the
// checker reads (a run once found none of its acknowledged dead letters).
func (h *Harness) describeIngest(ctx context.Context, missing int) {
	if c, err := h.JS.Consumer(ctx, topology.StreamDLQ, topology.ConsumerReplayIngest); err != nil {
		h.tb.Logf("chaos: %d dead letters missing; ingest consumer: %v", missing, err)
	} else if info, err := c.Info(ctx); err != nil {
		h.tb.Logf("chaos: %d dead letters missing; ingest consumer info: %v", missing, err)
	} else {
		h.tb.Logf("chaos: %d dead letters missing; ingest consumer: %d pending, %d waiting for an ack, ack floor stream seq %d, %d delivered",
			missing, info.NumPending, info.NumAckPending, info.AckFloor.Stream, info.Delivered.Stream)
	}
	var port int
	var started time.Time
	var rows int64
	conn, err := pgx.Connect(ctx, h.DatabaseURL)
	if err == nil {
		defer conn.Close(context.WithoutCancel(ctx))
		err = conn.QueryRow(ctx, `SELECT inet_server_port(), pg_postmaster_start_time(), (SELECT count(*) FROM dlq_entries)`).Scan(&port, &started, &rows)
	}
	h.tb.Logf("chaos: the checker reads PostgreSQL on port %d (started %s): %d rows in dlq_entries (err %v)", port, started.Format(time.RFC3339Nano), rows, err)
}

// ReplayedOrEscalated accepts the two statuses a drained entry ends in.
func ReplayedOrEscalated(s domain.DLQStatus) bool {
	return s == domain.DLQReplayed || s == domain.DLQRequiresReview
}

// FoldedAtLeast reports whether every service in want has folded at least
// its totals in want (for waiting on a fleet that keeps receiving load).
func (h *Harness) FoldedAtLeast(ctx context.Context, want map[string]Outcomes) bool {
	svcs := make([]string, 0, len(want))
	for svc := range want {
		svcs = append(svcs, svc)
	}
	states, err := h.Breakers(ctx, svcs)
	if err != nil {
		return false
	}
	for svc, w := range want {
		got := states[svc].Window.WindowStats
		if got.Successes < w.Successes || got.Failures < w.Failures {
			return false
		}
	}
	return true
}
