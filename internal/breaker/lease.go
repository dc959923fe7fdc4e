package breaker

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Keys of the bucket baldur_partitions. Every entry lives for the bucket's
// TTL (the lease TTL) unless renewed.
const (
	presencePrefix = "workers."
	leasePrefix    = "partitions."
)

func presenceKey(node string) string { return presencePrefix + node }
func leaseKey(p int) string          { return leasePrefix + strconv.Itoa(p) }

// partition is one owned partition: its lease and its folding loop.
type partition struct {
	p   int
	key string
	// rev is the lease key's revision after our last write; only the
	// manager's round (one goroutine per partition, joined before the round
	// goes on) and Stop, after it, touch it.
	rev uint64
	// renewed is the worker's monotonic time at the start of the last
	// successful lease write: the server's TTL runs from a later instant, so
	// renewed+TTL is a safe lower bound of the lease's expiry.
	renewed atomic.Int64
	// ctx is the partition loop's context; cancel ends the loop.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// fresh reports whether the lease was renewed within half its TTL: only then
// may the partition fetch (self-fencing). A worker that cannot renew stops
// fetching long before another worker can take the lease over.
func (w *Worker) fresh(pt *partition) bool {
	return w.mono()-time.Duration(pt.renewed.Load()) < w.cfg.Topology.Config.LeaseTTL/2
}

// manage runs the ownership rounds every third of the lease TTL until ctx
// ends or the worker crashed (test hook).
func (w *Worker) manage(ctx context.Context) {
	defer close(w.mgrDone)
	t := time.NewTicker(w.cfg.Topology.Config.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.crashed.Load() {
			return
		}
		if err := w.round(ctx, ctx); err != nil && ctx.Err() == nil {
			w.log.WarnContext(ctx, "partition ownership round failed", slog.Any("error", err))
		}
	}
}

// round renews the presence key and the owned leases, then moves towards the
// fair share ceil(partitions / live workers): extras are released (after
// their batch in hand), free partitions acquired. runCtx is the lifetime of
// the partition loops it starts.
//
// Every request is bounded by a quarter of the TTL (leaseRequest): a request
// lost with a NATS node must not hold the round — and with it the renewals
// that keep the partitions fetching — for a client's default timeout. The
// renewals go first, so that a lost presence write or listing does not keep
// them from being sent.
func (w *Worker) round(ctx, runCtx context.Context) error {
	kv := w.cfg.Topology.Partitions
	node := []byte(w.cfg.Node)
	w.mu.Lock()
	owned := make([]*partition, 0, len(w.owned))
	for _, pt := range w.owned {
		owned = append(owned, pt)
	}
	w.mu.Unlock()
	slices.SortFunc(owned, func(a, b *partition) int { return a.p - b.p })

	// Renewals are independent: send them at once rather than one round
	// trip after another.
	var wg sync.WaitGroup
	for _, pt := range owned {
		wg.Go(func() { w.renew(ctx, pt, node) })
	}
	wg.Wait()

	if err := w.leaseRequest(ctx, func(ctx context.Context) error {
		_, err := kv.Put(ctx, presenceKey(w.cfg.Node), node)
		return err
	}); err != nil {
		return err
	}
	var live int
	if err := w.leaseRequest(ctx, func(ctx context.Context) (err error) {
		live, err = w.liveWorkers(ctx)
		return err
	}); err != nil {
		return err
	}
	n := w.cfg.Topology.Config.Partitions
	share := (n + max(live, 1) - 1) / max(live, 1)
	w.log.DebugContext(ctx, "ownership round", slog.Int("live_workers", live), slog.Int("share", share))

	w.mu.Lock()
	have := len(w.owned)
	var extras []*partition
	if have > share {
		for _, pt := range w.owned {
			extras = append(extras, pt)
		}
		slices.SortFunc(extras, func(a, b *partition) int { return b.p - a.p })
		extras = extras[:have-share]
	}
	w.mu.Unlock()
	for _, pt := range extras {
		pt.cancel()
		<-pt.done // finishes and acks the batch in hand
		w.release(ctx, pt)
		have--
	}
	if have >= share {
		return nil
	}
	var taken map[string]bool
	if err := w.leaseRequest(ctx, func(ctx context.Context) (err error) {
		taken, err = w.taken(ctx)
		return err
	}); err != nil {
		return err
	}
	first := int(hash(w.cfg.Node) % uint32(n))
	var free []int
	for i := range n {
		if p := (first + i) % n; !taken[leaseKey(p)] {
			free = append(free, p)
		}
	}
	// Try the free partitions in waves of as many as are still wanted, each
	// wave's creates in parallel: at start-up a worker takes its whole share
	// in one round trip instead of one per partition.
	for len(free) > 0 && have < share {
		wave := free[:min(share-have, len(free))]
		free = free[len(wave):]
		got := make([]*partition, len(wave))
		for i, p := range wave {
			wg.Go(func() { got[i] = w.acquire(ctx, runCtx, p, node) })
		}
		wg.Wait()
		for _, pt := range got {
			if pt != nil {
				have++
				go w.runPartition(pt.ctx, pt)
			}
		}
	}
	return nil
}

// renew extends the lease of an owned partition by compare-and-set; a lease
// that is gone or changed hands is dropped at once.
func (w *Worker) renew(ctx context.Context, pt *partition, node []byte) {
	start := w.mono()
	rev, err := w.renewAt(ctx, pt, node)
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// A renewal whose answer was lost may have landed: if the key
		// still holds this node, at a later revision, the lease is ours
		// (no other worker writes this node's name). Renew from there.
		var e jetstream.KeyValueEntry
		if gerr := w.leaseRequest(ctx, func(ctx context.Context) (err error) {
			e, err = w.cfg.Topology.Partitions.Get(ctx, pt.key)
			return err
		}); gerr == nil && e.Revision() > pt.rev && string(e.Value()) == string(node) {
			pt.rev = e.Revision()
			start = w.mono()
			rev, err = w.renewAt(ctx, pt, node)
		}
	}
	switch {
	case err == nil:
		pt.rev = rev
		pt.renewed.Store(int64(start))
	case errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		errors.Is(err, jetstream.ErrKeyNotFound):
		// The lease expired and may belong to someone else now: stop at
		// once, release nothing.
		w.log.WarnContext(ctx, "partition lease lost", slog.Int("partition", pt.p), slog.Any("error", err))
		w.drop(pt)
	default:
		// Unknown outcome (timeout): the loop fences itself if this lasts.
		w.log.WarnContext(ctx, "partition lease not renewed", slog.Int("partition", pt.p), slog.Any("error", err))
	}
}

// renewAt writes the lease of pt by compare-and-set on pt.rev.
func (w *Worker) renewAt(ctx context.Context, pt *partition, node []byte) (rev uint64, err error) {
	err = w.leaseRequest(ctx, func(ctx context.Context) (err error) {
		rev, err = w.cfg.Topology.Partitions.Update(ctx, pt.key, node, pt.rev)
		return err
	})
	return rev, err
}

// acquire creates partition p's lease; nil when another worker has it (or
// the create failed). The partition's loop is not started yet.
func (w *Worker) acquire(ctx, runCtx context.Context, p int, node []byte) *partition {
	key := leaseKey(p)
	start := w.mono()
	var rev uint64
	err := w.leaseRequest(ctx, func(ctx context.Context) (err error) {
		rev, err = w.cfg.Topology.Partitions.Create(ctx, key, node)
		return err
	})
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			w.log.WarnContext(ctx, "partition lease not acquired", slog.Int("partition", p), slog.Any("error", err))
		}
		return nil
	}
	pctx, cancel := context.WithCancel(runCtx)
	pt := &partition{p: p, key: key, rev: rev, ctx: pctx, cancel: cancel, done: make(chan struct{})}
	pt.renewed.Store(int64(start))
	w.mu.Lock()
	w.owned[p] = pt
	w.mu.Unlock()
	w.stats.partitions.Add(1)
	w.log.InfoContext(ctx, "partition acquired", slog.Int("partition", p))
	return pt
}

// drop forgets a partition whose lease is lost and stops its loop without
// waiting.
func (w *Worker) drop(pt *partition) {
	pt.cancel()
	w.mu.Lock()
	if w.owned[pt.p] == pt {
		delete(w.owned, pt.p)
		w.stats.partitions.Add(-1)
	}
	w.mu.Unlock()
}

// release deletes the lease of a stopped partition (if it is still ours) so
// that another worker may take it at once.
func (w *Worker) release(ctx context.Context, pt *partition) {
	w.drop(pt)
	if err := w.leaseRequest(ctx, func(ctx context.Context) error {
		return w.cfg.Topology.Partitions.Delete(ctx, pt.key, jetstream.LastRevision(pt.rev))
	}); err != nil {
		w.log.WarnContext(ctx, "partition lease not released; it expires", slog.Int("partition", pt.p), slog.Any("error", err))
		return
	}
	w.log.InfoContext(ctx, "partition released", slog.Int("partition", pt.p))
}

// taken returns the partition lease keys that exist now. It reads each key
// (a released lease leaves a delete marker that Get skips).
func (w *Worker) taken(ctx context.Context) (map[string]bool, error) {
	n := w.cfg.Topology.Config.Partitions
	exists := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for p := range n {
		wg.Go(func() {
			_, err := w.cfg.Topology.Partitions.Get(ctx, leaseKey(p))
			switch {
			case err == nil:
				exists[p] = true
			case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
			default:
				errs[p] = err
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for p, ok := range exists {
		if ok {
			out[leaseKey(p)] = true
		}
	}
	return out, nil
}

// liveWorkers counts the presence keys: the subjects of the bucket's stream
// under workers.>, less those whose last message is a delete marker.
func (w *Worker) liveWorkers(ctx context.Context) (int, error) {
	s, err := w.js.Stream(ctx, "KV_"+w.cfg.Topology.Partitions.Bucket())
	if err != nil {
		return 0, err
	}
	prefix := "$KV." + w.cfg.Topology.Partitions.Bucket() + "."
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(prefix+presencePrefix+">"))
	if err != nil {
		return 0, err
	}
	n := 0
	for subj := range info.State.Subjects {
		if _, err := w.cfg.Topology.Partitions.Get(ctx, subj[len(prefix):]); err == nil {
			n++
		}
	}
	return n, nil
}

// leaseRequest runs f with a context bounded by a quarter of the lease TTL
// (renewals are sent every third of it and the partition fences itself at
// half of it).
func (w *Worker) leaseRequest(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Topology.Config.LeaseTTL/4)
	defer cancel()
	return f(ctx)
}

func hash(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}
