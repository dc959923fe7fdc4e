package domain

import "time"

// Lease is a service's replay lease (DESIGN §5, §7.6): while it is current,
// only its holder replays the service's dead letters, and every write the
// holder makes carries Token. Each acquisition gets a larger token than any
// before it, so a write fenced by an older token is recognisably stale.
type Lease struct {
	Service    string    `json:"service"`
	Holder     string    `json:"holder"`
	Token      int64     `json:"token"`
	AcquiredAt time.Time `json:"acquired_at"`
	RenewedAt  time.Time `json:"renewed_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// Current reports whether the lease is still in force at now: it expires at
// ExpiresAt, exclusive.
func (l Lease) Current(now time.Time) bool { return now.Before(l.ExpiresAt) }

// Fences reports whether a write carrying token must be refused at now: the
// token is not this lease's, or the lease has expired.
func (l Lease) Fences(token int64, now time.Time) bool {
	return token != l.Token || !l.Current(now)
}

// Remaining is how long the lease stays in force after now; zero once it has
// expired.
func (l Lease) Remaining(now time.Time) time.Duration {
	if !l.Current(now) {
		return 0
	}
	return l.ExpiresAt.Sub(now)
}
