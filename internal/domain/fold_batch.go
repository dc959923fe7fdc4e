package domain

import (
	"errors"
	"slices"
	"time"
)

// Fold folds a sequence of inputs into one breaker. It gives the same breakers
// and results as calling Apply on each input with the breaker the previous
// call returned, but copies the breaker's window once, when the first input
// is applied, and then changes its private copy in place: folding a batch of
// n outcome reports allocates once instead of n times.
//
// The breaker a Fold starts from is never modified. A Fold is not safe for
// concurrent use.
type Fold struct {
	b     Breaker
	owned bool
}

// NewFold returns a Fold starting from b.
func NewFold(b Breaker) *Fold { return &Fold{b: b} }

// Apply folds in into the breaker at env like Breaker.Apply and returns what
// happened.
func (f *Fold) Apply(in Input, env Env) Result {
	if !f.owned {
		f.b.Window = f.b.Window.clone()
		f.owned = true
	}
	var res Result
	f.b, res = f.b.apply(in, env, true)
	return res
}

// Breaker returns the breaker after the inputs applied so far. The Fold
// gives up its window to the returned value: a later Apply copies it again,
// so the returned breaker is never modified.
func (f *Fold) Breaker() Breaker {
	f.owned = false
	return f.b
}

// SetLastSeq sets the breaker's last folded stream sequence: a worker that
// checkpoints every input, commands included, advances it past each one.
func (f *Fold) SetLastSeq(seq uint64) { f.b.LastSeq = seq }

// LastSeq returns the breaker's last folded stream sequence.
func (f *Fold) LastSeq() uint64 { return f.b.LastSeq }

// ApplyAll folds inputs in order into b at env, as repeated Apply calls would,
// with one copy of the window for the whole batch. The result's Transitions
// are all the transitions in order; Changed, Granted, Applied, Ignored and
// KillSwitchOverridden are true when they are for any input; Archive is the
// last input's archival, if any; Err joins the inputs' errors. b is not
// modified.
func (b Breaker) ApplyAll(inputs []Input, env Env) (Breaker, Result) {
	f := Fold{b: b}
	var (
		total Result
		errs  []error
	)
	for _, in := range inputs {
		r := f.Apply(in, env)
		total.Transitions = append(total.Transitions, r.Transitions...)
		total.Changed = total.Changed || r.Changed
		total.Granted = total.Granted || r.Granted
		total.Applied = total.Applied || r.Applied
		total.Ignored = total.Ignored || r.Ignored
		total.KillSwitchOverridden = total.KillSwitchOverridden || r.KillSwitchOverridden
		if r.Archive != nil {
			total.Archive = r.Archive
		}
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	total.Err = errors.Join(errs...)
	return f.Breaker(), total
}

// clone returns w with a private copy of its buckets and their node lists,
// with room for a full window.
func (w Window) clone() Window {
	if w.Buckets == nil {
		return w
	}
	buckets := make([]Bucket, len(w.Buckets), max(len(w.Buckets), WindowBuckets))
	for i, b := range w.Buckets {
		b.Nodes = slices.Clone(b.Nodes)
		buckets[i] = b
	}
	w.Buckets = buckets
	return w
}

// addOwned is add on a window whose buckets belong to it alone (clone): it
// counts r into the bucket holding now in place.
func (w *Window) addOwned(now time.Time, span time.Duration, r Report) {
	start := now.Truncate(bucketWidth(span))
	n := len(w.Buckets)
	if n == 0 || w.Buckets[n-1].Start.Before(start) {
		w.Buckets = append(w.Buckets, Bucket{Start: start})
	}
	if n = len(w.Buckets); n > WindowBuckets {
		// Drop the oldest buckets in place, keeping the array.
		copy(w.Buckets, w.Buckets[n-WindowBuckets:])
		clear(w.Buckets[WindowBuckets:])
		w.Buckets = w.Buckets[:WindowBuckets]
	}
	b := &w.Buckets[len(w.Buckets)-1]
	b.Successes += r.Successes
	b.Failures += r.Failures
	b.SlowCalls += r.SlowCalls
	if (r.Failures > 0 || r.SlowCalls > 0) && len(b.Nodes) < MaxBucketNodes && !slices.Contains(b.Nodes, r.Node) {
		b.Nodes = append(b.Nodes, r.Node)
	}
	w.WindowStats = sumBuckets(w.Buckets)
}
