package breaker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/topology"
)

// retryWait is how long a partition loop waits after an error before trying
// again, and how often a fenced loop checks its lease.
const retryWait = 100 * time.Millisecond

// runPartition folds partition pt until ctx ends: the loop of one owned
// partition. It first resets the partition's durable consumer to its ack
// floor, so that whatever a previous owner left unacknowledged is delivered
// again, in stream order, before anything newer (see docs/breaker-worker.md).
func (w *Worker) runPartition(ctx context.Context, pt *partition) {
	defer close(pt.done)
	log := w.log.With(slog.Int("partition", pt.p))
	var (
		cons   jetstream.Consumer
		ackAll bool
		next   uint64 // the consumer sequence of the next delivery; 0: unknown
	)
	for cons == nil {
		c, base, err := w.openPartition(ctx, pt.p)
		if err == nil {
			cons, next = c, base+1
			ackAll = c.CachedInfo().Config.AckPolicy == jetstream.AckAllPolicy
			break
		}
		if ctx.Err() != nil {
			return
		}
		log.WarnContext(ctx, "partition consumer not ready", slog.Any("error", err))
		if !sleep(ctx, retryWait) {
			return
		}
	}
	b := newBatch(w, pt.p, ackAll)
	// mustReset is set when deliveries can no longer be trusted to follow
	// the ack floor in order (a gap, a batch not folded): nothing is fetched
	// or folded again until a reset of the consumer to its ack floor has
	// succeeded — folding a later delivery first would make last_seq skip
	// the earlier ones for good when they are redelivered.
	mustReset := false
	for ctx.Err() == nil && !w.crashed.Load() {
		if !w.fresh(pt) {
			sleep(ctx, retryWait/4)
			continue
		}
		// The work in hand is finished even when ctx ends: the writes and
		// the ack use a context that Stop does not cancel.
		work := context.WithoutCancel(ctx)
		if mustReset {
			seq, ok := w.reset(work, log, pt.p)
			if !ok {
				sleep(ctx, retryWait)
				continue
			}
			next, mustReset = seq, false
		}
		msgs, err := w.fetch(cons, b.msgs[:0])
		b.msgs = msgs
		if errors.Is(err, nats.ErrConnectionClosed) {
			log.WarnContext(ctx, "connection closed; partition stops")
			return
		}
		if err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "fetch failed", slog.Any("error", err))
			sleep(ctx, retryWait)
		}
		if len(msgs) == 0 {
			continue
		}
		if !w.fresh(pt) {
			// The lease went stale while the fetch waited: another worker
			// may own the partition now, and an ack from here (AckAll)
			// could ack deliveries it has not folded. Leave them unacked.
			mustReset = true
			continue
		}
		if gap := b.load(next); gap {
			// A delivery went missing (a fetch given up on by the client):
			// nothing after it may be folded before it. Start again from the
			// ack floor.
			w.stats.gaps.Add(1)
			log.WarnContext(ctx, "gap in deliveries; resetting the consumer", slog.Uint64("want_consumer_seq", next))
			mustReset = true
			continue
		}
		next = b.lastConsumerSeq() + 1
		err = b.process(work)
		switch {
		case errors.Is(err, errCrashed):
			return
		case err != nil:
			w.stats.batchErrors.Add(1)
			log.WarnContext(ctx, "batch not folded; redelivering from the ack floor", slog.Any("error", err))
			sleep(ctx, retryWait)
			mustReset = true
		}
	}
}

// openPartition looks the partition's consumer up and resets it to its ack
// floor. It returns the consumer and the consumer sequence of the last
// delivery after the reset.
func (w *Worker) openPartition(ctx context.Context, p int) (jetstream.Consumer, uint64, error) {
	cons, err := w.js.Consumer(ctx, topology.StreamInput, topology.ConsumerName(p))
	if err != nil {
		return nil, 0, err
	}
	r, err := w.js.ResetConsumer(ctx, topology.StreamInput, topology.ConsumerName(p))
	if err != nil {
		return nil, 0, err
	}
	w.stats.resets.Add(1)
	return cons, r.Delivered.Consumer, nil
}

// reset resets partition p's consumer to its ack floor and returns the
// consumer sequence of the next delivery; ok is false when the reset failed
// (the caller must not fold anything until one succeeds).
func (w *Worker) reset(ctx context.Context, log *slog.Logger, p int) (next uint64, ok bool) {
	// A reset lost with a NATS node is tried again by the caller: it waits
	// attemptTimeout, not a whole operation's time.
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	r, err := w.js.ResetConsumer(ctx, topology.StreamInput, topology.ConsumerName(p))
	if err != nil {
		log.WarnContext(ctx, "consumer reset failed; retrying before anything is folded", slog.Any("error", err))
		return 0, false
	}
	w.stats.resets.Add(1)
	return r.Delivered.Consumer + 1, true
}

// fetch returns the next batch: whatever is available at once, up to
// BatchSize; when nothing is, it waits up to FetchWait for one message and
// then takes what else is available with it.
func (w *Worker) fetch(cons jetstream.Consumer, buf []jetstream.Msg) ([]jetstream.Msg, error) {
	n := w.cfg.BatchSize
	batch, err := cons.FetchNoWait(n)
	if err != nil {
		return buf, err
	}
	for m := range batch.Messages() {
		buf = append(buf, m)
	}
	if len(buf) > 0 || batch.Error() != nil {
		return buf, fetchErr(batch.Error())
	}
	batch, err = cons.Fetch(1, jetstream.FetchMaxWait(w.cfg.FetchWait))
	if err != nil {
		return buf, err
	}
	for m := range batch.Messages() {
		buf = append(buf, m)
	}
	if len(buf) == 0 || n == 1 {
		return buf, fetchErr(batch.Error())
	}
	batch, err = cons.FetchNoWait(n - 1)
	if err != nil {
		return buf, nil // fold the one in hand; the next fetch retries
	}
	for m := range batch.Messages() {
		buf = append(buf, m)
	}
	return buf, nil
}

func fetchErr(err error) error {
	if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
