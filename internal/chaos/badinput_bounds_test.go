//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/topology"
)

// The bounds of the bad-input scenario's fleet, small enough for a flood
// to pass them within a case.
const (
	// badInputMaxBreakers is the breaker-workers' cap on live breakers.
	badInputMaxBreakers = 40
	// badInputMaxPending is the replay-worker's bound on one service's
	// live entries in PostgreSQL (the good services stay well below it).
	badInputMaxPending = 25
)

// breakerCap floods the fleet with reports for 100 new service names, then
// 20 more once the watches have caught up: every name either gets a breaker
// or a breaker_cap rejected event (nothing silently dropped), the fleet
// stops creating breakers at the cap (the second wave is rejected whole,
// the first may pass it by the documented slack), and the good services
// keep folding.
func (b *badInput) breakerCap(ctx context.Context) {
	h := b.h
	kv, err := h.JS.KeyValue(ctx, topology.BucketBreakers)
	if err != nil {
		b.t.Fatal(err)
	}
	flood := h.NewReports("svc-cap")
	wave := func(prefix string, n int) (created, rejected int) {
		var names []string
		var reps []Report
		for i := range n {
			names = append(names, fmt.Sprintf("%s-%03d", prefix, i))
			reps = append(reps, Report{Service: names[i], Successes: 1})
		}
		if err := flood.Send(ctx, reps); err != nil {
			b.t.Fatal(err)
		}
		for _, name := range names {
			b.bad("a report for a new name " + name)
		}
		var capped map[string]int
		ok := h.Until(30*time.Second, 200*time.Millisecond, func() bool {
			capped, err = rejectedServices(ctx, h, breaker.CodeBreakerCap)
			if err != nil {
				return false
			}
			created, rejected = 0, 0
			for _, name := range names {
				_, err := kv.Get(ctx, name)
				switch {
				case err == nil:
					created++
				case capped[name] > 0:
					rejected++
				}
			}
			return created+rejected == n
		})
		if !ok {
			h.Violation("breaker cap: of %d new names %d got a breaker and %d a breaker_cap event; the rest vanished", n, created, rejected)
		}
		for _, name := range names {
			if capped[name] > 1 {
				h.Violation("breaker cap: %s rejected %d times", name, capped[name])
			}
		}
		b.mu.Lock()
		b.expected[events.RejectedOutcome] += rejected
		b.mu.Unlock()
		return created, rejected
	}
	c1, r1 := wave("cap", 100)
	if r1 == 0 {
		h.Violation("breaker cap: 100 new names at a cap of %d and none rejected", badInputMaxBreakers)
	}
	// Every created key is stored (the wave saw each); the workers' watches
	// deliver them within a moment: knock again once the count the workers
	// must see is what the bucket holds.
	live, err := countKeys(ctx, kv)
	if err != nil {
		b.t.Fatal(err)
	}
	if !h.Until(10*time.Second, 100*time.Millisecond, func() bool {
		for _, w := range b.breakerWorkers {
			if w.View().Len() < live {
				return false
			}
		}
		return true
	}) {
		h.Violation("breaker cap: the workers' views did not reach the %d stored breakers", live)
	}
	c2, r2 := wave("cap2", 20)
	if c2 != 0 {
		h.Violation("breaker cap: %d breakers created at %d live (cap %d) once the watches had caught up", c2, live, badInputMaxBreakers)
	}
	b.h.tb.Logf("chaos: breaker cap %d: first wave %d created, %d rejected; %d live; second wave %d created, %d rejected",
		badInputMaxBreakers, c1, r1, live, c2, r2)
	b.good(ctx)
}

// backlogBound holds one service's breaker open (nothing replays) and sends
// it 40 dead letters at a bound of 25 live entries: exactly 25 are stored
// and 15 rejected with backlog_full events, and the good services' dead
// letters are not affected (checked at the end with every other).
func (b *badInput) backlogBound(ctx context.Context) {
	h := b.h
	const svc, n = "flood-svc", 40
	if _, err := h.Command(ctx, b.js, svc, events.BreakerCommand{Action: domain.ActionOpen, Actor: "chaos", Reason: "hold the flood"}); err != nil {
		b.t.Fatal(err)
	}
	// Not registered with the harness: a refused dead letter never reaches
	// PostgreSQL, and the harness waits for every registered one.
	flood := &DeadLetters{h: h, client: h.Client("svc-flood"), acked: map[string]string{}}
	for i := range n {
		if _, err := flood.Submit(ctx, svc, i, 2); err != nil {
			b.t.Fatal(err)
		}
		b.bad("a dead letter for " + svc)
	}
	var stored int64
	var rejected int
	ok := h.Until(30*time.Second, 200*time.Millisecond, func() bool {
		var err error
		if stored, err = h.Stored(ctx, []string{svc}); err != nil {
			return false
		}
		full, err := rejectedServices(ctx, h, replay.CodeBacklogFull)
		if err != nil {
			return false
		}
		rejected = full[svc]
		return stored+int64(rejected) == n
	})
	if !ok || stored != badInputMaxPending || rejected != n-badInputMaxPending {
		h.Violation("backlog bound: %d dead letters at a bound of %d: %d stored, %d rejected with backlog_full", n, badInputMaxPending, stored, rejected)
	}
	b.mu.Lock()
	b.expected[events.RejectedDLQ] += rejected
	b.mu.Unlock()
	b.h.tb.Logf("chaos: backlog bound %d: %d stored, %d rejected", badInputMaxPending, stored, rejected)
	b.good(ctx)
}

// rejectedServices counts the rejected events with code by the service
// their subject names.
func rejectedServices(ctx context.Context, h *Harness, code string) (map[string]int, error) {
	c, err := h.JS.OrderedConsumer(ctx, topology.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.FilterRejectedEvents}})
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			r, err := events.DecodeRejected(m.Data())
			if err != nil || r.Code != code {
				continue
			}
			out[r.Subject[strings.LastIndexByte(r.Subject, '.')+1:]]++
		}
		if n == 0 {
			return out, nil
		}
	}
}

// countKeys counts the keys of kv.
func countKeys(ctx context.Context, kv jetstream.KeyValue) (int, error) {
	l, err := kv.ListKeys(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for range l.Keys() {
		n++
	}
	return n, nil // the lister stops itself at the end of the keys
}
