package fleetstate

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRegistryPromotesInBatches(t *testing.T) {
	t.Parallel()
	r := newRegistry()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	require.Nil(t, r.get("a"))

	a, created := r.getOrCreate("a", now)
	require.True(t, created)
	require.Same(t, a, r.get("a"), "readable from the dirty map at once")
	again, created := r.getOrCreate("a", now)
	require.False(t, created)
	require.Same(t, a, again)
	select {
	case <-r.wake:
	default:
		t.Fatal("the promoting goroutine was not woken")
	}
	b, _ := r.getOrCreate("b", now.Add(time.Microsecond))
	require.Empty(t, *r.read.Load())

	// Not due yet: the delay grows with the read map.
	require.Equal(t, time.Millisecond, r.promoteDue(now, false))
	require.Empty(t, *r.read.Load())
	require.Zero(t, r.promoteDue(now.Add(time.Millisecond), false))
	require.Equal(t, map[string]*Handle{"a": a, "b": b}, *r.read.Load())
	require.Zero(t, r.dirtyLen.Load())
	require.Same(t, a, r.get("a"))

	c, _ := r.getOrCreate("c", now)
	require.Equal(t, time.Millisecond+4*time.Microsecond, r.promoteDue(now, false))
	require.Zero(t, r.promoteDue(now, true), "forced")
	require.Same(t, c, (*r.read.Load())["c"])
	require.Zero(t, r.promoteDue(now, true), "nothing to promote")

	var seen []string
	r.getOrCreate("d", now) // still dirty
	r.each(func(h *Handle) bool { seen = append(seen, h.Service()); return true })
	require.ElementsMatch(t, []string{"a", "b", "c", "d"}, seen)
	n := 0
	r.each(func(*Handle) bool { n++; return false })
	require.Equal(t, 1, n, "each stops when told")
}

func TestRegistryConcurrentCreateIsUnique(t *testing.T) {
	t.Parallel()
	r := newRegistry()
	now := time.Now()
	const goroutines, keys = 8, 200
	got := make([][]*Handle, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range keys {
				h, _ := r.getOrCreate(fmt.Sprint("svc-", i), now)
				got[g] = append(got[g], h)
				if i%50 == 0 {
					r.promoteDue(now, true)
				}
			}
		})
	}
	wg.Wait()
	for g := 1; g < goroutines; g++ {
		for i := range keys {
			require.Same(t, got[0][i], got[g][i], "one handle per service")
		}
	}
}
