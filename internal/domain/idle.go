package domain

import (
	"fmt"
	"time"
)

// Bounds of the idle period of an archive command with trigger idle (its
// ttl) and of the watchdog's idle archival.
const (
	// MinIdlePeriod is the shortest idle period.
	MinIdlePeriod = time.Minute
	// MaxIdlePeriod is the longest idle period, a little over a year.
	MaxIdlePeriod = 366 * 24 * time.Hour
)

// IdleSince is the last activity the breaker records: ActiveAt, or for a
// state written before ActiveAt existed its last transition; zero when it
// records neither.
func (b *Breaker) IdleSince() time.Time {
	if !b.ActiveAt.IsZero() {
		return b.ActiveAt
	}
	if b.LastTransition != nil {
		return b.LastTransition.At
	}
	return time.Time{}
}

// CheckIdle says whether b may be archived as idle at now after the idle
// period after: it must be CLOSED in mode auto with no manual record and no
// override (expired or not: the watchdog removes an expired one first), and
// its last activity (IdleSince) must be at least after before now. The
// error, wrapping ErrNoChange, names what keeps it; nil means idle.
func (b *Breaker) CheckIdle(now time.Time, after time.Duration) error {
	switch {
	case b.State != StateClosed:
		return fmt.Errorf("%w: not idle: state is %s", ErrNoChange, b.State)
	case b.Mode != ModeAuto:
		return fmt.Errorf("%w: not idle: mode is %s", ErrNoChange, b.Mode)
	case b.Manual != nil:
		return fmt.Errorf("%w: not idle: a manual record is kept", ErrNoChange)
	case b.Override != nil:
		return fmt.Errorf("%w: not idle: an override is kept", ErrNoChange)
	}
	if since := b.IdleSince(); !since.IsZero() && now.Sub(since) < after {
		return fmt.Errorf("%w: not idle: active at %s, less than %s ago", ErrNoChange, since.Format(time.RFC3339), after)
	}
	return nil
}
