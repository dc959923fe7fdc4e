package domain

import (
	"slices"
	"time"
)

// Window geometry and memory bounds.
const (
	// WindowBuckets is the number of time buckets the sliding window is split
	// into: each covers window/WindowBuckets, aligned on multiples of that
	// width, and the window at time now is the bucket holding now and the
	// WindowBuckets-1 before it.
	WindowBuckets = 10
	// MaxBucketNodes caps the failing nodes remembered per bucket, so a
	// breaker's state stays bounded (at most WindowBuckets × MaxBucketNodes
	// node ids) however many nodes report. Nodes beyond the cap still have
	// their calls counted; they are only not told apart. min_failing_nodes
	// is limited to this cap, so the cap never hides a trip.
	MaxBucketNodes = 32
)

// WindowStats are the totals over a breaker's sliding window, as stored in its
// state and carried by transition events. Rates are percentages of calls
// (successes + failures); slow calls are a subset of calls.
type WindowStats struct {
	// Successes is the number of successful calls in the window.
	Successes int64 `json:"successes"`
	// Failures is the number of failed calls in the window.
	Failures int64 `json:"failures"`
	// SlowCalls is the number of slow calls in the window.
	SlowCalls int64 `json:"slow_calls"`
	// FailureRate is Failures / calls in percent (0–100), 0 without calls.
	FailureRate float64 `json:"failure_rate"`
	// SlowCallRate is SlowCalls / calls in percent (0–100), 0 without calls.
	SlowCallRate float64 `json:"slow_call_rate"`
	// FailingNodes is the number of distinct nodes that reported failures or
	// slow calls in the window.
	FailingNodes int `json:"failing_nodes"`
}

// Calls is the number of calls in the window.
func (s WindowStats) Calls() int64 { return s.Successes + s.Failures }

// Bucket is one time slice of the sliding window.
type Bucket struct {
	// Start is the beginning of the slice; it covers [Start, Start+width).
	Start time.Time `json:"start"`
	// Successes counts successful calls reported in the slice.
	Successes int64 `json:"successes"`
	// Failures counts failed calls reported in the slice.
	Failures int64 `json:"failures"`
	// SlowCalls counts slow calls reported in the slice.
	SlowCalls int64 `json:"slow_calls"`
	// Nodes are the distinct nodes that reported failures or slow calls in
	// the slice, at most MaxBucketNodes.
	Nodes []string `json:"nodes,omitempty"`
}

// Window is a breaker's sliding window: its totals and the buckets they are
// computed from, oldest first. Buckets are shared between Breaker values and
// never modified in place: every change copies the bucket list.
type Window struct {
	WindowStats
	// Buckets are the live time slices, oldest first, at most WindowBuckets.
	Buckets []Bucket `json:"buckets,omitempty"`
}

// bucketWidth is the width of one bucket of a window of span.
func bucketWidth(span time.Duration) time.Duration {
	w := span / WindowBuckets
	if w <= 0 {
		return time.Nanosecond
	}
	return w
}

// age drops the buckets that have left the window at now and recomputes the
// totals. It reports whether any bucket was dropped.
func (w Window) age(now time.Time, span time.Duration) (Window, bool) {
	width := bucketWidth(span)
	cutoff := now.Truncate(width).Add(-(WindowBuckets - 1) * width)
	i := 0
	for i < len(w.Buckets) && w.Buckets[i].Start.Before(cutoff) {
		i++
	}
	if i == 0 {
		return w, false
	}
	if i == len(w.Buckets) {
		return Window{}, true
	}
	w.Buckets = w.Buckets[i:]
	w.WindowStats = sumBuckets(w.Buckets)
	return w, true
}

// add counts r into the bucket holding now (the newest bucket when the clock
// reads earlier than it) and recomputes the totals. The window must already be
// aged to now.
func (w Window) add(now time.Time, span time.Duration, r Report) Window {
	start := now.Truncate(bucketWidth(span))
	n := len(w.Buckets)
	reuse := n > 0 && !w.Buckets[n-1].Start.Before(start)
	size := n
	if !reuse {
		size++
	}
	buckets := make([]Bucket, n, size)
	copy(buckets, w.Buckets)
	if !reuse {
		buckets = append(buckets, Bucket{Start: start})
	}
	if len(buckets) > WindowBuckets {
		buckets = buckets[len(buckets)-WindowBuckets:]
	}
	b := &buckets[len(buckets)-1]
	b.Successes += r.Successes
	b.Failures += r.Failures
	b.SlowCalls += r.SlowCalls
	if (r.Failures > 0 || r.SlowCalls > 0) && len(b.Nodes) < MaxBucketNodes && !slices.Contains(b.Nodes, r.Node) {
		nodes := make([]string, len(b.Nodes), len(b.Nodes)+1)
		copy(nodes, b.Nodes)
		b.Nodes = append(nodes, r.Node)
	}
	return Window{WindowStats: sumBuckets(buckets), Buckets: buckets}
}

// sumBuckets computes the totals of buckets.
func sumBuckets(buckets []Bucket) WindowStats {
	var s WindowStats
	for i, b := range buckets {
		s.Successes += b.Successes
		s.Failures += b.Failures
		s.SlowCalls += b.SlowCalls
		for j, node := range b.Nodes {
			if !slices.Contains(b.Nodes[:j], node) && !nodeSeen(buckets[:i], node) {
				s.FailingNodes++
			}
		}
	}
	if calls := s.Calls(); calls > 0 {
		s.FailureRate = float64(s.Failures) * 100 / float64(calls)
		s.SlowCallRate = float64(s.SlowCalls) * 100 / float64(calls)
	}
	return s
}

// nodeSeen reports whether any of buckets lists node.
func nodeSeen(buckets []Bucket, node string) bool {
	for _, b := range buckets {
		if slices.Contains(b.Nodes, node) {
			return true
		}
	}
	return false
}
