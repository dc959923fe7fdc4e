package fleetstate

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/topology"
)

// View is a node's local, continuously updated copy of the fleet's breaker
// state, breaker config and governance, read from the KV buckets
// baldur_breakers, baldur_config and baldur_governance. Its methods are safe
// for concurrent use.
type View struct {
	opts   options
	reg    *registry
	cfg    *configState
	gov    atomic.Pointer[domain.Governance]
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stop   sync.Once

	watchers []jetstream.KeyWatcher

	// Totals over every snapshot, for AggregateFailureRate. Written only by
	// the breakers goroutine.
	failures, calls atomic.Int64
	count           atomic.Int64

	lmu       sync.Mutex
	listeners atomic.Pointer[[]*listener]
}

type listener struct{ fn func(Snapshot) }

// watchedBucket is one bucket the view follows: the goroutine applies every
// entry to the view and closes ready after the initial values.
type watchedBucket struct {
	name  string
	apply func(jetstream.KeyValueEntry)
	// idle is called when the updates channel is empty; it returns how long
	// until it wants to be called again (0: not before the next update).
	idle func() time.Duration
	// wake, when set, makes the goroutine call idle.
	wake <-chan struct{}
}

// Watch starts watching the fleet's buckets through js and returns once their
// initial values are loaded: from then on every read reflects at least the
// state of the buckets when Watch was called. ctx bounds only this initial
// load; the view keeps following the buckets until Stop.
func Watch(ctx context.Context, js jetstream.JetStream, opts ...Option) (*View, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	v := &View{opts: o, reg: newRegistry(), cfg: newConfigState()}
	v.gov.Store(&domain.Governance{})
	v.listeners.Store(&[]*listener{})

	buckets := []watchedBucket{{
		name:  topology.BucketBreakers,
		apply: v.applyBreaker,
		idle:  func() time.Duration { return v.reg.promoteDue(time.Now(), false) },
		wake:  v.reg.wake,
	}}
	if !o.noConfig {
		buckets = append(buckets, watchedBucket{name: topology.BucketConfig, apply: v.applyConfig})
	}
	if !o.noGovernance {
		buckets = append(buckets, watchedBucket{name: topology.BucketGovernance, apply: v.applyGovernance})
	}

	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	v.cancel = cancel
	ready := make(chan error, len(buckets))
	for _, b := range buckets {
		kv, err := js.KeyValue(ctx, b.name)
		if err == nil {
			var w jetstream.KeyWatcher
			w, err = kv.WatchAll(life)
			if err == nil {
				v.watchers = append(v.watchers, w)
				v.wg.Add(1)
				go v.follow(life, b, w, ready)
				continue
			}
		}
		v.Stop()
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("%w: %s (no breaker-worker has created the topology yet)", ErrNoBucket, b.name)
		}
		return nil, fmt.Errorf("fleetstate: watch %s: %w", b.name, err)
	}
	for range buckets {
		select {
		case err := <-ready:
			if err != nil {
				v.Stop()
				return nil, err
			}
		case <-ctx.Done():
			v.Stop()
			return nil, fmt.Errorf("fleetstate: initial load: %w", ctx.Err())
		}
	}
	return v, nil
}

// follow applies the entries of one bucket until its watcher closes.
func (v *View) follow(life context.Context, b watchedBucket, w jetstream.KeyWatcher, ready chan<- error) {
	defer v.wg.Done()
	loaded := false
	defer func() {
		if !loaded {
			ready <- fmt.Errorf("%w: %s", ErrWatchClosed, b.name)
		}
	}()
	updates := w.Updates()
	var timer *time.Timer
	var timerC <-chan time.Time
	idle := func() {
		if b.idle == nil {
			return
		}
		if d := b.idle(); d > 0 {
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			timerC = timer.C
		} else {
			timerC = nil
		}
	}
	for {
		select {
		case e, ok := <-updates:
			if !ok {
				if life.Err() == nil {
					v.opts.log.Warn("fleetstate: watch ended before Stop; the view no longer follows the bucket",
						slog.String("bucket", b.name))
				}
				return
			}
			if e == nil {
				if b.name == topology.BucketBreakers {
					v.reg.promoteDue(time.Now(), true)
				}
				if !loaded {
					loaded = true
					ready <- nil
				}
				continue
			}
			b.apply(e)
			if loaded && len(updates) == 0 {
				idle()
			}
		case <-b.wake:
			idle()
		case <-timerC:
			timerC = nil
			idle()
		}
	}
}

// Stop stops watching and waits for the watch goroutines to end. Reads keep
// answering from the last state. It may be called more than once.
func (v *View) Stop() {
	v.stop.Do(func() {
		v.cancel() // first, so that the goroutines know the end is wanted
		for _, w := range v.watchers {
			_ = w.Stop()
		}
		v.wg.Wait()
	})
}

// applyBreaker applies one entry of baldur_breakers.
func (v *View) applyBreaker(e jetstream.KeyValueEntry) {
	svc := e.Key()
	switch e.Operation() {
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		h := v.reg.get(svc)
		if h == nil {
			return
		}
		if old := h.p.Swap(nil); old != nil {
			v.account(old, -1)
			v.notify(Snapshot{Service: h.svc, State: domain.StateClosed, Mode: domain.ModeAuto, Revision: e.Revision()})
		}
		return
	}
	h, _ := v.reg.getOrCreate(svc, time.Now())
	s, err := decodeSnapshot(h.svc, e.Value(), e.Revision())
	if err != nil {
		v.opts.log.Warn("fleetstate: breaker state ignored; the previous one stays",
			slog.String("service", svc), slog.Uint64("revision", e.Revision()), slog.Any("error", err))
		return
	}
	if old := h.p.Swap(s); old != nil {
		v.account(old, -1)
	}
	v.account(s, 1)
	v.notify(*s)
}

// account adds (sign 1) or removes (sign -1) s from the totals.
func (v *View) account(s *Snapshot, sign int64) {
	v.failures.Add(sign * s.Failures)
	v.calls.Add(sign * (s.Successes + s.Failures))
	v.count.Add(sign)
}

func (v *View) notify(s Snapshot) {
	for _, l := range *v.listeners.Load() {
		l.fn(s)
	}
}

// Snapshot returns svc's breaker snapshot; false when svc has no breaker
// state (it is closed).
func (v *View) Snapshot(svc string) (Snapshot, bool) {
	h := v.reg.get(svc)
	if h == nil {
		return Snapshot{}, false
	}
	s := h.p.Load()
	if s == nil {
		return Snapshot{}, false
	}
	return *s, true
}

// Handle returns svc's handle, creating it when svc has none yet. The same
// service always gets the same handle, for the life of the view; handles are
// never removed, so callers should only ask for valid service names.
func (v *View) Handle(svc string) *Handle {
	if h := v.reg.get(svc); h != nil {
		return h
	}
	h, _ := v.reg.getOrCreate(svc, time.Now())
	return h
}

// Len returns the number of services with breaker state.
func (v *View) Len() int { return int(v.count.Load()) }

// All yields the snapshot of every service with breaker state, in no
// particular order.
func (v *View) All() iter.Seq[Snapshot] {
	return func(yield func(Snapshot) bool) {
		v.reg.each(func(h *Handle) bool {
			s := h.p.Load()
			return s == nil || yield(*s)
		})
	}
}

// AggregateFailureRate is the fleet-wide failure fraction (0–1): the sum of
// every breaker's window failures over the sum of their window calls, as last
// written, 0 when there is no call (domain.AggregateFailureRate over the
// snapshots, kept up to date on every update).
func (v *View) AggregateFailureRate() float64 {
	calls := v.calls.Load()
	if calls <= 0 {
		return 0
	}
	return float64(v.failures.Load()) / float64(calls)
}

// Governance returns the fleet's governance state.
func (v *View) Governance() domain.Governance { return *v.gov.Load() }

// EmergencyLevel returns the fleet's emergency level without copying the
// governance state: the SDK reads it on every call.
func (v *View) EmergencyLevel() domain.EmergencyLevel { return v.gov.Load().Emergency.Level }

// Config returns svc's resolved breaker config: the built-in defaults, then
// "_defaults", then svc's own object, each the last valid one.
func (v *View) Config(svc string) domain.Config { return v.cfg.get(svc) }

// OnChange calls fn after every update of a breaker snapshot, with the new
// snapshot; after a deletion, with a closed auto snapshot of generation 0.
// fn runs on the view's watch goroutine, in the order of the updates, and
// must not block. cancel stops the calls.
func (v *View) OnChange(fn func(s Snapshot)) (cancel func()) {
	l := &listener{fn: fn}
	v.lmu.Lock()
	defer v.lmu.Unlock()
	next := append(slices.Clone(*v.listeners.Load()), l)
	v.listeners.Store(&next)
	return func() {
		v.lmu.Lock()
		defer v.lmu.Unlock()
		next := slices.DeleteFunc(slices.Clone(*v.listeners.Load()), func(x *listener) bool { return x == l })
		v.listeners.Store(&next)
	}
}

// reject reports a refused value of bucket's key.
func (v *View) reject(kind events.RejectedKind, bucket, key string, value []byte, err error) {
	r := events.NewRejected("$KV."+bucket+"."+key, nil, len(value), err, v.opts.clock())
	r.Kind = kind
	v.opts.log.Warn("fleetstate: value refused and ignored", slog.String("bucket", bucket),
		slog.String("key", key), slog.Any("error", err))
	v.opts.rejected(r)
}
