//go:build chaos

package chaos

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/auditanchor"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/topology"
)

// CheckAudit checks the audit log after the faults: once the audit consumer
// has nothing left to deliver (a killed replay-worker's unacknowledged
// events come back after the consumer's ack wait), the log verifies — its
// keyed chain and every head anchored in BALDUR_AUDIT — and every transition
// of svcs (one per generation with an event in BALDUR_EVENTS) has exactly one
// audit record. Call it after CheckTransitions. It returns the records
// checked.
func (h *Harness) CheckAudit(ctx context.Context, svcs []string) int64 {
	h.tb.Helper()
	drained := h.Until(topology.ReplayEventsAckWait+30*time.Second, 200*time.Millisecond, func() bool {
		var info *jetstream.ConsumerInfo
		err := h.retryTransient(ctx, func(ctx context.Context) error {
			c, err := h.JS.Consumer(ctx, topology.StreamEvents, topology.ConsumerAudit)
			if err != nil {
				return err
			}
			info, err = c.Info(ctx)
			return err
		})
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	if !drained {
		h.Violation("audit: the audit consumer still has events to deliver %s after the faults", topology.ReplayEventsAckWait+30*time.Second)
	}
	var heads *auditanchor.Heads
	err := h.retryTransient(ctx, func(ctx context.Context) error {
		var err error
		heads, err = auditanchor.Read(ctx, h.JS)
		return err
	})
	if err != nil {
		h.tb.Fatalf("chaos: read the anchored audit heads: %v", err)
	}
	if heads.Malformed > 0 {
		h.Violation("audit: %d messages of BALDUR_AUDIT are not audit heads", heads.Malformed)
	}
	rep, err := h.Store.VerifyAuditChain(ctx, &heads.Anchors)
	if err != nil {
		h.Violation("audit: the log does not verify after the faults: %v", err)
	}
	h.tb.Logf("chaos: audit: %d records (last seq %d), %d anchored heads (highest seq %d)", rep.Records, rep.LastSeq, rep.Anchors, rep.AnchoredSeq)
	evs, _, err := h.TransitionEvents(ctx)
	if err != nil {
		h.tb.Fatalf("chaos: read transition events: %v", err)
	}
	for _, svc := range svcs {
		n, err := h.auditTransitions(ctx, svc)
		if err != nil {
			h.tb.Fatalf("chaos: read the audit records of %s: %v", svc, err)
		}
		if want := len(evs[svc]); n != want {
			h.Violation("audit: %s: %d transition records, want one per transition event (%d)", svc, n, want)
		}
	}
	return rep.Records
}

// auditTransitions counts the audit records of svc's transitions.
func (h *Harness) auditTransitions(ctx context.Context, svc string) (int, error) {
	n := 0
	var after int64
	for {
		recs, err := h.Store.ListAudit(ctx, "breaker:"+svc, after, 1000)
		if err != nil {
			return 0, err
		}
		for _, r := range recs {
			if strings.HasPrefix(r.Action, replay.AuditActionBreakerPrefix) && r.Action != replay.AuditActionBreakerPrefix+"archived" {
				n++
			}
		}
		if len(recs) < 1000 {
			return n, nil
		}
		after = recs[len(recs)-1].Seq
	}
}
