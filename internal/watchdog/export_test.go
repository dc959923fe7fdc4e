package watchdog

import (
	"time"

	"github.com/baldurfleet/baldur/internal/domain"
)

// Kill simulates a crash: the watchdog stops renewing and ticking and does
// not release its lease.
func (w *Watchdog) Kill() { w.killed.Store(true) }

// Indexed returns what the watchdog's own index of baldur_breakers holds
// for svc: its state and the forced mode's and the override's expiry (zero:
// none), so that a test can wait until the watchdog has seen a write before
// it ticks.
func (w *Watchdog) Indexed(svc string) (state domain.State, manual, override time.Time) {
	d, _ := w.index.get(svc)
	return d.State, d.manualExpires(), d.overrideExpires()
}

// IndexedIdleSince returns the last activity the watchdog's own index holds
// for svc (zero: none, or svc unknown), for a test to wait on before it
// ticks.
func (w *Watchdog) IndexedIdleSince(svc string) time.Time {
	d, ok := w.index.get(svc)
	if !ok {
		return time.Time{}
	}
	return d.idleSince()
}
