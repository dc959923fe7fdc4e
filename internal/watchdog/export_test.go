package watchdog

// Kill simulates a crash: the watchdog stops renewing and ticking and does
// not release its lease.
func (w *Watchdog) Kill() { w.killed.Store(true) }
