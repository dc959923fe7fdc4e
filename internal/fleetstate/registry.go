package fleetstate

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// registry maps services to their handles. Reads go to an immutable map
// behind an atomic pointer (one atomic load and one map lookup: no lock).
// New handles first go to a small dirty map under a mutex, readable at once,
// and are promoted into a fresh copy of the read map in batches, so that a
// burst of new services costs one copy of the map, not one per service.
//
// A copy-on-write map was chosen over sync.Map after measuring both with 100k
// services: a lookup is about twice as fast (hot key 4–7 ns against 13–14 ns;
// random keys 60 ns against 130 ns) and an entry takes 59 B against 150 B
// (handle included). See BenchmarkRegistry and TestMemoryPerBreaker.
type registry struct {
	read atomic.Pointer[map[string]*Handle]

	mu       sync.Mutex
	dirty    map[string]*Handle
	dirtyLen atomic.Int64
	// since is when the oldest dirty handle was added.
	since time.Time
	// wake tells the promoting goroutine that a handle was added.
	wake chan struct{}
}

func newRegistry() *registry {
	r := &registry{wake: make(chan struct{}, 1)}
	m := map[string]*Handle{}
	r.read.Store(&m)
	return r
}

// get returns svc's handle, or nil.
func (r *registry) get(svc string) *Handle {
	if h, ok := (*r.read.Load())[svc]; ok {
		return h
	}
	if r.dirtyLen.Load() == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := (*r.read.Load())[svc]; ok {
		return h
	}
	return r.dirty[svc]
}

// getOrCreate returns svc's handle, creating it in the dirty map when there
// is none. created is true when it did.
func (r *registry) getOrCreate(svc string, now time.Time) (h *Handle, created bool) {
	if h, ok := (*r.read.Load())[svc]; ok {
		return h, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := (*r.read.Load())[svc]; ok {
		return h, false
	}
	if h, ok := r.dirty[svc]; ok {
		return h, false
	}
	if r.dirty == nil {
		r.dirty = map[string]*Handle{}
		r.since = now
	}
	// The key is cloned so that it does not keep the subject or the
	// caller's buffer it was cut from.
	svc = strings.Clone(svc)
	h = &Handle{svc: svc}
	r.dirty[svc] = h
	r.dirtyLen.Store(int64(len(r.dirty)))
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return h, true
}

// promoteDelay is how long new handles may wait in the dirty map before they
// are promoted: longer for larger maps, so that copying the read map costs at
// most a few percent of a core however fast new services appear.
func (r *registry) promoteDelay() time.Duration {
	return time.Millisecond + time.Duration(len(*r.read.Load()))*2*time.Microsecond
}

// promoteDue promotes the dirty handles when they have waited long enough (or
// force is set) and reports how long until the next promotion is due (0: none
// pending).
func (r *registry) promoteDue(now time.Time, force bool) time.Duration {
	if r.dirtyLen.Load() == 0 {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.dirty) == 0 {
		return 0
	}
	if wait := r.since.Add(r.promoteDelay()).Sub(now); !force && wait > 0 {
		return wait
	}
	old := *r.read.Load()
	m := make(map[string]*Handle, len(old)+len(r.dirty))
	maps.Copy(m, old)
	maps.Copy(m, r.dirty)
	r.read.Store(&m)
	r.dirty = nil
	r.dirtyLen.Store(0)
	return 0
}

// each calls fn for every handle until it returns false.
func (r *registry) each(fn func(*Handle) bool) {
	r.mu.Lock()
	read := *r.read.Load()
	dirty := slices.Collect(maps.Values(r.dirty))
	r.mu.Unlock()
	for _, h := range read {
		if !fn(h) {
			return
		}
	}
	for _, h := range dirty {
		if !fn(h) {
			return
		}
	}
}
