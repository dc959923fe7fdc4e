package watchdog

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// leaseValue is the value of LeaderKey: who holds the lease and until when
// (wall clock). The key also lives only for the bucket's TTL unless renewed.
type leaseValue struct {
	Holder    string    `json:"holder"`
	ExpiresAt time.Time `json:"expires_at"`
}

// leaseTTL is the effective lease lifetime: the configured TTL, bounded by
// the bucket's own TTL when it is shorter.
func (w *Watchdog) leaseTTL() time.Duration {
	ttl := w.cfg.LeaseTTL
	if b := w.deps.Topology.Config.LeaseTTL; b > 0 && b < ttl {
		ttl = b
	}
	return ttl
}

// fresh reports whether this watchdog holds the lease and renewed it within
// half its lifetime: only then may it act (self-fencing). A leader that
// cannot renew stops acting long before a standby can take over.
func (w *Watchdog) fresh() bool {
	r := w.renewed.Load()
	return r != 0 && w.mono()-time.Duration(r) < w.leaseTTL()/2
}

// IsLeader reports whether this watchdog holds a fresh leader lease.
func (w *Watchdog) IsLeader() bool { return w.fresh() }

// mono is the time since the watchdog was created, on the monotonic clock;
// never 0 after creation, so 0 can mean "not renewed".
func (w *Watchdog) mono() time.Duration { return time.Since(w.epoch) + 1 }

// leaseLoop acquires or renews the lease every third of its lifetime until
// ctx ends.
func (w *Watchdog) leaseLoop(ctx context.Context) {
	defer close(w.leaseDone)
	w.leaseRound(ctx)
	t := time.NewTicker(w.leaseTTL() / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.killed.Load() {
			return
		}
		w.leaseRound(ctx)
	}
}

// leaseRound renews the lease it holds, or tries to take it when it is free
// or expired.
func (w *Watchdog) leaseRound(ctx context.Context) {
	kv := w.deps.Topology.Partitions
	ttl := w.leaseTTL()
	start := w.mono()
	val, _ := json.Marshal(leaseValue{Holder: w.cfg.Node, ExpiresAt: time.Now().Add(ttl)})
	rctx, cancel := context.WithTimeout(ctx, ttl/2)
	defer cancel()
	if w.leaseRev != 0 {
		rev, err := kv.Update(rctx, LeaderKey, val, w.leaseRev)
		if err == nil {
			w.leaseRev = rev
			w.renewed.Store(int64(start))
			return
		}
		if ctx.Err() != nil {
			return
		}
		w.lost(err)
		// Fall through: the key may have expired, then it can be taken again.
	}
	rev, err := kv.Create(rctx, LeaderKey, val)
	if errors.Is(err, jetstream.ErrKeyExists) {
		var e jetstream.KeyValueEntry
		if e, err = kv.Get(rctx, LeaderKey); err == nil {
			var cur leaseValue
			if json.Unmarshal(e.Value(), &cur) == nil && cur.Holder != w.cfg.Node && time.Now().Before(cur.ExpiresAt) {
				return // held by another, live watchdog: stand by
			}
			rev, err = kv.Update(rctx, LeaderKey, val, e.Revision())
		} else if errors.Is(err, jetstream.ErrKeyNotFound) {
			rev, err = kv.Create(rctx, LeaderKey, val)
		}
	}
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, jetstream.ErrKeyExists) && !isWrongRevision(err) {
			w.log.WarnContext(ctx, "leader lease round failed", slog.Any("error", err))
		}
		return
	}
	w.leaseRev = rev
	w.renewed.Store(int64(start))
	w.stats.leaderAcquired.Add(1)
	w.log.InfoContext(ctx, "watchdog is the leader", slog.String("node", w.cfg.Node), slog.Duration("lease_ttl", ttl))
}

// lost forgets a lease that could not be renewed.
func (w *Watchdog) lost(err error) {
	if w.leaseRev == 0 {
		return
	}
	w.leaseRev = 0
	w.renewed.Store(0)
	w.stats.leaderLost.Add(1)
	w.log.Warn("leader lease lost", slog.String("node", w.cfg.Node), slog.Any("error", err))
}

// release deletes the lease key if this watchdog still holds it, so that a
// standby takes over at once.
func (w *Watchdog) release(ctx context.Context) {
	if w.leaseRev == 0 {
		return
	}
	rev := w.leaseRev
	w.leaseRev = 0
	w.renewed.Store(0)
	if err := w.deps.Topology.Partitions.Delete(ctx, LeaderKey, jetstream.LastRevision(rev)); err != nil && !isWrongRevision(err) {
		w.log.WarnContext(ctx, "leader lease not released", slog.Any("error", err))
	}
}

// isWrongRevision reports a compare-and-set that lost: the key changed.
func isWrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
