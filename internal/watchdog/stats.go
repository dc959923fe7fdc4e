package watchdog

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Stats are the watchdog's counters since it was created. Every action of
// every duty is counted here (until telemetry exports them).
type Stats struct {
	// Leader is true while the watchdog holds a fresh lease.
	Leader bool
	// LeaderAcquired and LeaderLost count lease takeovers and losses.
	LeaderAcquired, LeaderLost int64
	// Ticks counts the ticks run as the leader.
	Ticks int64
	// Breakers is the number of breakers in the deadline index.
	Breakers int
	// Commands counts the breaker commands published, by trigger: half_open
	// (recovery_timeout, manual_expired, override_expired, stuck_half_open)
	// and archive for idle breakers (idle).
	Commands map[string]int64
	// CommandsHeld counts deadlines seen again for a breaker generation whose
	// command was sent less than ResendAfter ago (not sent again).
	CommandsHeld int64
	// Rescued counts replaying entries put back to pending after their
	// replay lease expired.
	Rescued int64
	// SLABreached counts entries flagged past their domain's SLA.
	SLABreached int64
	// Expired counts entries moved to expired past their expires_at.
	Expired int64
	// Purged counts terminal entries deleted after the retention.
	Purged int64
	// RollupsPruned counts outcome rollup rows deleted after the rollup
	// retention.
	RollupsPruned int64
	// EventsFailed counts events or audit entries that could not be written.
	EventsFailed int64
	// SLAInvalid counts reads of an invalid "_sla" value (defaults used).
	SLAInvalid int64
	// Duties holds each duty's runs and errors, by name.
	Duties map[string]DutyStats
}

// DutyStats are one duty's counters.
type DutyStats struct {
	// Runs counts the duty's runs.
	Runs int64
	// Errors counts the runs that failed.
	Errors int64
}

type counters struct {
	leaderAcquired, leaderLost, ticks                         atomic.Int64
	held, rescued, slaBreached, expired, purged, eventsFailed atomic.Int64
	rollupsPruned                                             atomic.Int64
	slaInvalid                                                atomic.Int64

	mu       sync.Mutex
	commands map[string]int64
	duties   map[string]DutyStats
}

func (c *counters) command(trigger string) {
	c.mu.Lock()
	c.commands[trigger]++
	c.mu.Unlock()
}

func (c *counters) duty(name string, failed bool) {
	c.mu.Lock()
	d := c.duties[name]
	d.Runs++
	if failed {
		d.Errors++
	}
	c.duties[name] = d
	c.mu.Unlock()
}

// Stats returns a copy of the counters.
func (w *Watchdog) Stats() Stats {
	c := &w.stats
	c.mu.Lock()
	cmds, duties := maps.Clone(c.commands), maps.Clone(c.duties)
	c.mu.Unlock()
	return Stats{
		Leader:         w.fresh(),
		LeaderAcquired: c.leaderAcquired.Load(),
		LeaderLost:     c.leaderLost.Load(),
		Ticks:          c.ticks.Load(),
		Breakers:       w.index.len(),
		Commands:       cmds,
		CommandsHeld:   c.held.Load(),
		Rescued:        c.rescued.Load(),
		SLABreached:    c.slaBreached.Load(),
		Expired:        c.expired.Load(),
		Purged:         c.purged.Load(),
		RollupsPruned:  c.rollupsPruned.Load(),
		EventsFailed:   c.eventsFailed.Load(),
		SLAInvalid:     c.slaInvalid.Load(),
		Duties:         duties,
	}
}
