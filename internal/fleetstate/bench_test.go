package fleetstate

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/baldurfleet/baldur/internal/domain"
)

const benchServices = 100_000

func benchRegistry() (*registry, []string) {
	r := newRegistry()
	keys := make([]string, benchServices)
	now := time.Now()
	for i := range keys {
		keys[i] = fmt.Sprintf("service-%06d", i)
		h, _ := r.getOrCreate(keys[i], now)
		h.p.Store(&Snapshot{Service: keys[i], State: domain.StateClosed, Mode: domain.ModeAuto})
	}
	r.promoteDue(now, true)
	return r, keys
}

// BenchmarkRegistry compares the copy-on-write registry with sync.Map for the
// read path (service name → handle → snapshot → decision), 100k services:
// one hot key read from every goroutine, and keys spread over the whole map.
func BenchmarkRegistry(b *testing.B) {
	r, keys := benchRegistry()
	var sm sync.Map
	for _, k := range keys {
		sm.Store(k, r.get(k))
	}
	now := time.Now()
	hot := keys[4242]
	b.Run("cow/hot", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if r.get(hot).Load().Allows(now) != domain.DecisionAllow {
					b.Fatal("denied")
				}
			}
		})
	})
	b.Run("syncmap/hot", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				v, _ := sm.Load(hot)
				if v.(*Handle).Load().Allows(now) != domain.DecisionAllow {
					b.Fatal("denied")
				}
			}
		})
	})
	b.Run("cow/spread", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if r.get(keys[i%benchServices]).Load().Allows(now) != domain.DecisionAllow {
				b.Fatal("denied")
			}
			i += 7919
		}
	})
	b.Run("syncmap/spread", func(b *testing.B) {
		i := 0
		for b.Loop() {
			v, _ := sm.Load(keys[i%benchServices])
			if v.(*Handle).Load().Allows(now) != domain.DecisionAllow {
				b.Fatal("denied")
			}
			i += 7919
		}
	})
}

// BenchmarkPromote measures one promotion of a new service into a registry of
// 100k: the copy of the read map.
func BenchmarkPromote(b *testing.B) {
	r, _ := benchRegistry()
	now := time.Now()
	i := 0
	for b.Loop() {
		r.getOrCreate(fmt.Sprint("new-", i), now)
		r.promoteDue(now, true)
		i++
	}
}
