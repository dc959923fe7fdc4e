package baldur

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/fleetstate"
)

// Breaker is a service's breaker as seen by this node, resolved once: its
// Allow and Record skip the lookup by name that Client.Allow and
// Client.Record do. Get one with Client.Breaker and keep it; it is safe for
// concurrent use and stays valid until the Client is closed.
type Breaker struct {
	c    *Client
	name string
	// err is set when name is not a valid service name; such a breaker
	// always admits and records nothing.
	err error
	h   *fleetstate.Handle
	// permitSubject is baldur.permit.<name>.
	permitSubject string

	// slowNanos is the service's slow_call_duration in nanoseconds, 0 when
	// off; refreshed by the reporter from the resolved config.
	slowNanos atomic.Int64
	// tier is the service's tier (1 to 3), from the same config; it decides
	// admission under an emergency level.
	tier atomic.Int32
	// refusedRev is the snapshot revision + 1 at which a permit was refused:
	// until the breaker's state changes, asking again is pointless.
	refusedRev atomic.Uint64
	// retryAt (unix nanoseconds) holds off permit requests after one failed
	// (timeout, no responder).
	retryAt atomic.Int64

	// The counters Record writes, away from the fields Allow reads.
	_         [64]byte
	successes atomic.Int64
	failures  atomic.Int64
	slow      atomic.Int64
	// trailing counts failures since the last success.
	trailing atomic.Int64
	// types maps a failure type to its counter; replaced (copy on write)
	// under typesMu when a new type appears.
	types   atomic.Pointer[map[string]*atomic.Int64]
	typesMu sync.Mutex
}

// verdict is the admission decision of one call.
type verdict uint8

const (
	admitted verdict = iota
	refusedOpen
	refusedNoPermit
	refusedDownstream
	refusedEmergency
)

// err returns the error of a refusal for service svc, nil when admitted.
func (v verdict) err(svc string) error {
	switch v {
	case refusedOpen:
		return fmt.Errorf("%w: service %q", ErrOpen, svc)
	case refusedNoPermit:
		return fmt.Errorf("%w: service %q", ErrNoPermit, svc)
	case refusedDownstream:
		return fmt.Errorf("%w: service %q", ErrDownstream, svc)
	case refusedEmergency:
		return fmt.Errorf("%w: service %q", ErrEmergency, svc)
	}
	return nil
}

func newBreaker(c *Client, name string) *Breaker {
	name = string([]byte(name)) // do not keep the caller's backing array
	b := &Breaker{c: c, name: name}
	if err := events.ValidateServiceName(name); err != nil {
		b.err = fmt.Errorf("%w: %w", ErrInvalidService, err)
		return b
	}
	b.h = c.view.Handle(name)
	b.permitSubject = events.MustPermitSubject(name)
	b.refreshConfig()
	return b
}

// Name returns the service's name.
func (b *Breaker) Name() string { return b.name }

// Err returns the error of an invalid service name, nil for a valid one.
func (b *Breaker) Err() error { return b.err }

// Allow reports whether a call to the service may go now: downstream
// checkers first, then the breaker's state from the local copy. It asks the
// fleet for a permit only when the breaker is half-open, or open past its
// recovery time; otherwise it does no I/O and does not allocate.
func (b *Breaker) Allow() bool { return b.admit() == admitted }

// admit decides one call.
func (b *Breaker) admit() verdict {
	if cs := b.c.checkers.Load(); cs != nil {
		for _, ch := range *cs {
			if !ch.fn(b.name) {
				return refusedDownstream
			}
		}
	}
	if b.h == nil {
		return admitted
	}
	if lvl := b.c.view.EmergencyLevel(); lvl != domain.EmergencyNormal {
		if share := lvl.TierAdmission(int(b.tier.Load())); share < 1 && (share <= 0 || rand.Float64() >= share) {
			return refusedEmergency
		}
	}
	s := b.h.Load()
	d, timeless := s.AllowsTimeless()
	if !timeless {
		d = s.Allows(b.c.opts.clock())
	}
	switch d {
	case domain.DecisionAllow:
		return admitted
	case domain.DecisionAskPermit:
		return b.askPermit(s, b.c.opts.clock())
	}
	return refusedOpen
}

// askPermit asks the fleet for a half-open permit (DESIGN §4, contract §6).
func (b *Breaker) askPermit(s *fleetstate.Snapshot, now time.Time) verdict {
	if b.refusedRev.Load() == s.Revision+1 {
		return refusedNoPermit
	}
	if now.UnixNano() < b.retryAt.Load() {
		return refusedNoPermit
	}
	c := b.c
	c.permitRequests.Add(1)
	msg, err := c.nc.Request(b.permitSubject, c.permitBody, c.opts.requestTimeout)
	if err != nil {
		b.retryAt.Store(now.Add(c.opts.requestTimeout).UnixNano())
		c.log.Debug("baldur: permit request failed", slog.String("service", b.name), slog.String("error", err.Error()))
		return refusedNoPermit
	}
	reply, err := events.DecodePermitReply(msg.Data)
	if err != nil {
		b.retryAt.Store(now.Add(c.opts.requestTimeout).UnixNano())
		c.log.Warn("baldur: invalid permit reply", slog.String("service", b.name), slog.String("error", err.Error()))
		return refusedNoPermit
	}
	if reply.Granted {
		c.permitsGranted.Add(1)
		return admitted
	}
	b.refusedRev.Store(s.Revision + 1)
	return refusedNoPermit
}

// Record counts the outcome of one call; the counts are reported to the
// fleet in the background (at once after a failure). It never blocks and
// does not allocate, except the first time a failure type is seen.
func (b *Breaker) Record(o Outcome) {
	if b.h == nil {
		b.c.invalidRecords.Add(1)
		return
	}
	failed := o.failed()
	if failed {
		b.failures.Add(1)
		b.trailing.Add(1)
		if ft := o.failureType(); ft != "" {
			b.countType(ft)
		}
	} else {
		b.successes.Add(1)
		if b.trailing.Load() != 0 {
			b.trailing.Store(0)
		}
	}
	if t := b.slowNanos.Load(); t > 0 && int64(o.Duration) >= t {
		b.slow.Add(1)
	}
	// Report failures at once; and every outcome while the breaker is
	// probing, so that it closes or re-opens without waiting for the tick.
	if failed {
		b.c.kick()
	} else if s := b.h.Load(); s != nil && s.State != domain.StateClosed {
		b.c.kick()
	}
}

// State returns the breaker's state and whether the fleet has one for the
// service (false means none yet: closed).
func (b *Breaker) State() (State, bool) {
	if b.h == nil {
		return StateClosed, false
	}
	s := b.h.Load()
	if s == nil {
		return StateClosed, false
	}
	return State(s.State), true
}

// countType counts one failure of type ft.
func (b *Breaker) countType(ft string) {
	if m := b.types.Load(); m != nil {
		if ctr, ok := (*m)[ft]; ok {
			ctr.Add(1)
			return
		}
	}
	b.newType(ft).Add(1)
}

// newType returns the counter of a failure type not seen before, creating
// it; an invalid name, or one beyond maxTypes, gets OtherFailureType's.
func (b *Breaker) newType(ft string) *atomic.Int64 {
	b.typesMu.Lock()
	defer b.typesMu.Unlock()
	var cur map[string]*atomic.Int64
	if m := b.types.Load(); m != nil {
		cur = *m
	}
	if ctr, ok := cur[ft]; ok {
		return ctr
	}
	probe := events.OutcomeReport{Failures: 1, TrailingFailures: 1, FailureTypes: map[string]int64{ft: 1}}
	if probe.Validate() != nil || len(cur) >= events.MaxFailureTypes-1 {
		ft = OtherFailureType
		if ctr, ok := cur[ft]; ok {
			return ctr
		}
	} else {
		ft = string([]byte(ft))
	}
	next := make(map[string]*atomic.Int64, len(cur)+1)
	maps.Copy(next, cur)
	ctr := new(atomic.Int64)
	next[ft] = ctr
	b.types.Store(&next)
	return ctr
}

// refreshConfig reads the service's slow_call_duration from the resolved
// config.
func (b *Breaker) refreshConfig() {
	cfg := b.c.view.Config(b.name)
	b.slowNanos.Store(int64(cfg.SlowCallDuration))
	b.tier.Store(int32(cfg.Tier))
}

// idle reports whether no call was recorded since the last take.
func (b *Breaker) idle() bool { return b.successes.Load() == 0 && b.failures.Load() == 0 }

// pendingCalls is the number of calls recorded and not yet taken.
func (b *Breaker) pendingCalls() int64 { return b.successes.Load() + b.failures.Load() }

// take swaps the counters for zero and returns them as a report; false when
// there was nothing to report. The swaps run in the reverse order of
// Record's increments (sub-counts before totals), so a report never counts
// more slow calls, typed or trailing failures than calls; the last
// adjustments keep it within the contract when a Record ran in between.
func (b *Breaker) take() (events.OutcomeReport, bool) {
	if b.idle() {
		return events.OutcomeReport{}, false
	}
	var r events.OutcomeReport
	r.TrailingFailures = b.trailing.Swap(0)
	if m := b.types.Load(); m != nil {
		for k, ctr := range *m {
			if v := ctr.Swap(0); v > 0 {
				if r.FailureTypes == nil {
					r.FailureTypes = make(map[string]int64, len(*m))
				}
				r.FailureTypes[k] = v
			}
		}
	}
	r.SlowCalls = b.slow.Swap(0)
	r.Successes = b.successes.Swap(0)
	r.Failures = b.failures.Swap(0)
	// Counts above the contract's bound go back for the next report.
	r.Successes = capCount(&b.successes, r.Successes)
	r.Failures = capCount(&b.failures, r.Failures)
	calls := r.Successes + r.Failures
	if calls == 0 {
		return events.OutcomeReport{}, false
	}
	r.SlowCalls = min(r.SlowCalls, calls)
	r.TrailingFailures = min(r.TrailingFailures, r.Failures)
	if r.Successes == 0 {
		r.TrailingFailures = r.Failures
	}
	clampTypes(&r)
	return r, true
}

// capCount returns min(v, events.MaxCount) and gives the rest back to ctr.
func capCount(ctr *atomic.Int64, v int64) int64 {
	if v <= events.MaxCount {
		return v
	}
	ctr.Add(v - events.MaxCount)
	return events.MaxCount
}

// clampTypes keeps the failure type counts within failures.
func clampTypes(r *events.OutcomeReport) {
	var sum int64
	for _, v := range r.FailureTypes {
		sum += v
	}
	for k, v := range r.FailureTypes {
		if sum <= r.Failures {
			break
		}
		cut := min(v, sum-r.Failures)
		sum -= cut
		if v-cut == 0 {
			delete(r.FailureTypes, k)
		} else {
			r.FailureTypes[k] = v - cut
		}
	}
	if len(r.FailureTypes) == 0 {
		r.FailureTypes = nil
	}
}

// permitBody returns the body of this node's permit requests.
func permitBody(node string) []byte {
	body, err := json.Marshal(events.PermitRequest{Node: node})
	if err != nil {
		panic(err) // a struct of one string always encodes
	}
	return body
}
