package watchdog

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
)

// deadlines is what the watchdog keeps of one breaker: the fields its
// deadlines are computed from, nothing else.
type deadlines struct {
	State      domain.State `json:"state"`
	Mode       domain.Mode  `json:"mode"`
	Generation uint64       `json:"generation"`
	RecoveryAt time.Time    `json:"recovery_at"`
	HalfOpen   struct {
		Permits   int       `json:"permits"`
		Issued    int       `json:"issued"`
		StartedAt time.Time `json:"started_at"`
	} `json:"half_open"`
	Manual *struct {
		ExpiresAt time.Time `json:"expires_at"`
	} `json:"manual"`
	Override *struct {
		ExpiresAt time.Time `json:"expires_at"`
	} `json:"override"`
	// ActiveAt and LastTransition.At date the breaker's last activity
	// (domain.Breaker.IdleSince).
	ActiveAt       time.Time `json:"active_at"`
	LastTransition *struct {
		At time.Time `json:"at"`
	} `json:"last_transition"`
	// written is when the stored value was written (the server's time):
	// no activity of a value without active_at is later.
	written time.Time
}

// idleSince is the breaker's last activity: active_at; for a value without
// it (written before it existed, or by a worker that does not know it) the
// later of its last transition and when it was written, which no report
// folded into it can be after.
func (d *deadlines) idleSince() time.Time {
	if !d.ActiveAt.IsZero() {
		return d.ActiveAt
	}
	if d.LastTransition != nil && d.LastTransition.At.After(d.written) {
		return d.LastTransition.At
	}
	return d.written
}

// idle reports whether the breaker may be archived as idle at now after the
// idle period after (domain.Breaker.CheckIdle, which the breaker-worker
// applies again), and since when it is idle.
func (d *deadlines) idle(now time.Time, after time.Duration) (time.Time, bool) {
	if d.State != domain.StateClosed || d.Mode != domain.ModeAuto || d.Manual != nil || d.Override != nil {
		return time.Time{}, false
	}
	since := d.idleSince()
	return since, !since.IsZero() && now.Sub(since) >= after
}

// manualExpires is the forced mode's expiry, zero when there is none.
func (d *deadlines) manualExpires() time.Time {
	if d.Manual == nil || (d.Mode != domain.ModeForcedOpen && d.Mode != domain.ModeForcedClosed) {
		return time.Time{}
	}
	return d.Manual.ExpiresAt
}

// overrideExpires is the override's expiry, zero when there is none.
func (d *deadlines) overrideExpires() time.Time {
	if d.Override == nil {
		return time.Time{}
	}
	return d.Override.ExpiresAt
}

// index is the watchdog's compact copy of baldur_breakers, kept by a watch.
type index struct {
	mu sync.RWMutex
	m  map[string]deadlines
}

func newIndex() *index { return &index{m: map[string]deadlines{}} }

func (x *index) len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.m)
}

// each calls fn for every breaker under the read lock; fn must not block.
func (x *index) each(fn func(svc string, d *deadlines)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for svc, d := range x.m {
		fn(svc, &d)
	}
}

func (x *index) get(svc string) (deadlines, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	d, ok := x.m[svc]
	return d, ok
}

// apply folds one watch entry into the index; an undecodable value removes
// the breaker (the breaker-workers report it).
func (x *index) apply(e jetstream.KeyValueEntry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(x.m, e.Key())
		return
	}
	var d deadlines
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		delete(x.m, e.Key())
		return
	}
	d.written = e.Created()
	x.m[e.Key()] = d
}

// watchBreakers starts the watch of baldur_breakers and returns once the
// initial values are in the index.
func (w *Watchdog) watchBreakers(ctx context.Context) error {
	kw, err := w.deps.Topology.Breakers.WatchAll(ctx)
	if err != nil {
		return err
	}
	ready := make(chan struct{})
	go func() {
		defer close(w.watchDone)
		defer func() { _ = kw.Stop() }()
		synced := false
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-kw.Updates():
				if !ok {
					if ctx.Err() == nil {
						w.log.Warn("watch of baldur_breakers ended")
					}
					if !synced {
						close(ready)
					}
					return
				}
				if e == nil {
					if !synced {
						synced = true
						close(ready)
					}
					continue
				}
				w.index.apply(e)
			}
		}
	}()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
