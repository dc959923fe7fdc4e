package fleetstate

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/baldurfleet/baldur/internal/domain"
)

// Snapshot is the compact, read-only copy of one breaker that the view keeps:
// what admission needs (state, mode, recovery_at), the generation, the
// window's totals for the aggregate failure rate, and the KV revision it was
// read at. The full domain.Breaker (its window buckets, manual and override
// records) is never kept.
type Snapshot struct {
	// Service is the breaker's service (its key in baldur_breakers).
	Service string
	// State is closed, open or half_open.
	State domain.State
	// Mode is auto, forced_open, forced_closed, disabled or metrics_only.
	Mode domain.Mode
	// Generation is the breaker's generation.
	Generation uint64
	// RecoveryAt is when an OPEN breaker may start probing; zero otherwise.
	RecoveryAt time.Time
	// Successes and Failures are the window's totals when the state was
	// written.
	Successes, Failures int64
	// Revision is the KV revision the snapshot was read at.
	Revision uint64
}

// Allows says whether a call may go at now (domain.Admit). A nil snapshot is
// a service without breaker state, which is closed: it allows. It neither
// locks nor allocates.
func (s *Snapshot) Allows(now time.Time) domain.Decision {
	if s == nil {
		return domain.DecisionAllow
	}
	return domain.Admit(s.State, s.Mode, s.RecoveryAt, now)
}

// AllowsTimeless is Allows without a clock: the decision and true when it does
// not depend on the time (domain.AdmitTimeless), false for an OPEN breaker in
// auto mode, which needs Allows(now). A nil snapshot allows.
func (s *Snapshot) AllowsTimeless() (domain.Decision, bool) {
	if s == nil {
		return domain.DecisionAllow, true
	}
	return domain.AdmitTimeless(s.State, s.Mode)
}

// Handle is the stable place of one service's snapshot in a view: it stays
// valid for the life of the view, across updates and deletions of the
// service's breaker, so a caller can resolve it once and read it on every
// call.
type Handle struct {
	svc string
	p   atomic.Pointer[Snapshot]
}

// Service returns the handle's service.
func (h *Handle) Service() string { return h.svc }

// Load returns the service's current snapshot, or nil when the service has no
// breaker state (a closed breaker). It is one atomic load: no lock, no
// allocation. The snapshot must not be modified.
func (h *Handle) Load() *Snapshot { return h.p.Load() }

// wireBreaker is the part of a breaker's JSON the view reads; the rest
// (window buckets, manual, override, pending events) is skipped.
type wireBreaker struct {
	Service    string       `json:"service"`
	State      domain.State `json:"state"`
	Mode       domain.Mode  `json:"mode"`
	Generation uint64       `json:"generation"`
	RecoveryAt time.Time    `json:"recovery_at"`
	Window     struct {
		Successes int64 `json:"successes"`
		Failures  int64 `json:"failures"`
	} `json:"window"`
}

// decodeSnapshot reads the snapshot of svc (the key, shared by the snapshot)
// from a value of baldur_breakers.
func decodeSnapshot(svc string, value []byte, rev uint64) (*Snapshot, error) {
	var w wireBreaker
	if err := json.Unmarshal(value, &w); err != nil {
		return nil, fmt.Errorf("%w: key %s: %w", ErrBadState, svc, err)
	}
	if w.Service != svc {
		return nil, fmt.Errorf("%w: key %s holds the breaker of %q", ErrBadState, svc, w.Service)
	}
	return &Snapshot{
		Service:    svc,
		State:      internState(w.State),
		Mode:       internMode(w.Mode),
		Generation: w.Generation,
		// UTC drops a decoded time's zone, so no snapshot keeps a
		// *time.Location of its own.
		RecoveryAt: w.RecoveryAt.UTC(),
		Successes:  w.Window.Successes,
		Failures:   w.Window.Failures,
		Revision:   rev,
	}, nil
}

// internState returns the package constant equal to s, so 100k snapshots do
// not each keep a copy of "closed". An unknown state is kept as read (and
// admitted: fail open).
func internState(s domain.State) domain.State {
	switch s {
	case domain.StateClosed, "":
		return domain.StateClosed
	case domain.StateOpen:
		return domain.StateOpen
	case domain.StateHalfOpen:
		return domain.StateHalfOpen
	}
	return s
}

// internMode is internState for modes.
func internMode(m domain.Mode) domain.Mode {
	switch m {
	case domain.ModeAuto, "":
		return domain.ModeAuto
	case domain.ModeForcedOpen:
		return domain.ModeForcedOpen
	case domain.ModeForcedClosed:
		return domain.ModeForcedClosed
	case domain.ModeDisabled:
		return domain.ModeDisabled
	case domain.ModeMetricsOnly:
		return domain.ModeMetricsOnly
	}
	return m
}
