package breaker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/telemetry"
)

// maxCASAttempts bounds the retries of one Update against concurrent writers.
const maxCASAttempts = 32

// FoldFunc computes a breaker's next value from its current one. It must be
// pure: Update calls it again with fresh state when a compare-and-set loses.
type FoldFunc func(b domain.Breaker) (domain.Breaker, domain.Result)

// StateStore reads and writes breaker state in the KV bucket baldur_breakers,
// always by compare-and-set on the key's revision (DESIGN §7.1), and publishes
// the transitions a write causes exactly once (§7.2).
//
// A write that causes transitions stores them in the state's pending_events
// together with the new state; StateStore then publishes them with
// Nats-Msg-Id <service>.<generation> and clears the list with a second
// compare-and-set. A writer that dies between the two leaves the list in the
// bucket, and the next writer of the key publishes it again: the stream's
// duplicate window drops what was already published.
type StateStore struct {
	kv     jetstream.KeyValue
	js     jetstream.JetStream
	source string
	log    *slog.Logger
}

// NewStateStore returns a StateStore over the bucket kv that publishes events
// through js with ce-source source.
func NewStateStore(kv jetstream.KeyValue, js jetstream.JetStream, source string, log *slog.Logger) *StateStore {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &StateStore{kv: kv, js: js, source: source, log: log}
}

// Get returns svc's breaker and its revision; a service without one gets a new
// closed breaker and revision 0.
func (s *StateStore) Get(ctx context.Context, svc string) (domain.Breaker, uint64, error) {
	e, err := s.kv.Get(ctx, svc)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return domain.NewBreaker(svc), 0, nil
	}
	if err != nil {
		return domain.Breaker{}, 0, fmt.Errorf("breaker: read %s: %w", svc, err)
	}
	b, err := DecodeState(svc, e.Value())
	return b, e.Revision(), err
}

// DecodeState decodes a value of the bucket baldur_breakers.
func DecodeState(svc string, v []byte) (domain.Breaker, error) {
	var b domain.Breaker
	if err := json.Unmarshal(v, &b); err != nil {
		return domain.Breaker{}, fmt.Errorf("%w: %s: %w", ErrBadState, svc, err)
	}
	if b.Service != svc {
		return domain.Breaker{}, fmt.Errorf("%w: key %s holds the breaker of %q", ErrBadState, svc, b.Service)
	}
	return b, nil
}

// Update applies fold to svc's breaker by compare-and-set, retrying with the
// fresh value when another writer got there first, then publishes the
// transitions. It returns the breaker as written and the fold's result. When
// the fold changes nothing, nothing is written (pending events left by a dead
// writer are still published).
//
// A fold whose result carries an Archive deletes the key instead (see
// archive): the result's Archive stays set only when a stored breaker was
// deleted; with no key to delete (archived already, by a command folded
// before a redelivery) it is cleared and nothing is written or published.
//
// Each request is bounded by attemptTimeout; one the cluster loses (a NATS
// node gone, a stream leader moving) is tried again, reading the key afresh,
// until ctx ends.
func (s *StateStore) Update(ctx context.Context, svc string, fold FoldFunc) (domain.Breaker, domain.Result, error) {
	return s.update(ctx, svc, fold, nil)
}

// update is Update; admit, when set, is asked before a write that would
// create svc's key (no key was read), and an error from it ends the update
// with nothing written: the fold's result and that error are returned.
func (s *StateStore) update(ctx context.Context, svc string, fold FoldFunc, admit func() error) (domain.Breaker, domain.Result, error) {
	conflicts, lost := 0, 0
	// again waits before the next attempt after err, or reports that
	// there is none: a lost compare-and-set and a request lost to the
	// cluster (a NATS node gone, a stream leader moving) are tried again
	// until ctx ends; any other error ends the update.
	again := func(err error) error {
		switch {
		case isConflict(err):
			conflicts++
			if conflicts >= maxCASAttempts {
				return fmt.Errorf("%w: %s after %d attempts", ErrConflict, svc, maxCASAttempts)
			}
			return casBackoff(ctx, conflicts)
		case ctx.Err() == nil && transient(err):
			lost++
			s.log.DebugContext(ctx, "breaker request lost; trying again", slog.String("service", svc),
				slog.Int("attempt", lost), slog.Any("error", err))
			return sleepCtx(ctx, transientWait)
		default:
			return err
		}
	}
	for {
		var (
			cur domain.Breaker
			rev uint64
		)
		err := attempt(ctx, func(ctx context.Context) (err error) {
			cur, rev, err = s.Get(ctx, svc)
			return err
		})
		if err != nil {
			if err := again(err); err != nil {
				return domain.Breaker{}, domain.Result{}, err
			}
			continue
		}
		next, res := fold(cur)
		if res.Archive != nil {
			if rev == 0 {
				res.Archive = nil
				return cur, res, nil
			}
			pending := append(append([]domain.Transition(nil), cur.PendingEvents...), res.Transitions...)
			err := s.archive(ctx, *res.Archive, pending, rev)
			if err != nil {
				if err := again(err); err != nil {
					return domain.Breaker{}, domain.Result{}, err
				}
				continue
			}
			next.PendingEvents = nil
			return next, res, nil
		}
		if !res.Changed && len(cur.PendingEvents) == 0 {
			return cur, res, nil
		}
		if rev == 0 && admit != nil {
			if err := admit(); err != nil {
				return cur, res, err
			}
		}
		if res.Changed {
			next.PendingEvents = append(append([]domain.Transition(nil), cur.PendingEvents...), res.Transitions...)
		} else {
			next = cur
		}
		// A write whose answer was lost may have landed: the next attempt
		// reads it back, and the fold skips the inputs at or below its
		// last_seq, so nothing is folded twice.
		err = attempt(ctx, func(ctx context.Context) (err error) {
			rev, err = s.put(ctx, svc, next, rev)
			return err
		})
		if err != nil {
			if err := again(err); err != nil {
				return domain.Breaker{}, domain.Result{}, err
			}
			continue
		}
		if len(next.PendingEvents) > 0 {
			next = s.flush(ctx, next, rev)
		}
		return next, res, nil
	}
}

// attemptTimeout bounds one request of an Update (a read, a write, an event
// published): a request lost with a NATS node that went away costs this
// long, and the update tries again, instead of the whole operation's time.
const attemptTimeout = 2 * time.Second

// transientWait is the pause before an update tries again after a request
// lost to the cluster.
const transientWait = 50 * time.Millisecond

// attempt runs f with a context bounded by attemptTimeout.
func attempt(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	return f(ctx)
}

// transient reports an error of a request the cluster lost or could not
// serve for the moment: no answer in time, nobody to answer (a stream
// leader being elected), the connection between servers.
func transient(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrConnectionReconnecting)
}

// sleepCtx waits d or until ctx ends, and returns ctx's error if it ended.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if !sleep(ctx, d) {
		return ctx.Err()
	}
	return nil
}

func (s *StateStore) put(ctx context.Context, svc string, b domain.Breaker, rev uint64) (uint64, error) {
	v, err := json.Marshal(b)
	if err != nil {
		return 0, fmt.Errorf("breaker: encode %s: %w", svc, err)
	}
	if rev == 0 {
		rev, err = s.kv.Create(ctx, svc, v)
	} else {
		rev, err = s.kv.Update(ctx, svc, v, rev)
	}
	if err != nil && !isConflict(err) {
		return 0, fmt.Errorf("breaker: write %s: %w", svc, err)
	}
	return rev, err
}

// flush publishes b's pending events and clears them if the key is still at
// rev. A failure is logged, not returned: the events stay pending in the
// bucket and the next writer publishes them.
func (s *StateStore) flush(ctx context.Context, b domain.Breaker, rev uint64) domain.Breaker {
	for _, t := range b.PendingEvents {
		if err := attempt(ctx, func(ctx context.Context) error { return s.PublishTransition(ctx, t) }); err != nil {
			s.log.WarnContext(ctx, "transition event not published; it stays pending",
				slog.String("service", b.Service), slog.Uint64("generation", t.Generation), slog.Any("error", err))
			return b
		}
	}
	cleared := b
	cleared.PendingEvents = nil
	if err := attempt(ctx, func(ctx context.Context) error { _, err := s.put(ctx, b.Service, cleared, rev); return err }); err != nil {
		// Another writer has the key now and will clear the list itself.
		return b
	}
	return cleared
}

// PublishTransition publishes t to baldur.event.breaker.<svc>.<kind> with
// Nats-Msg-Id <svc>.<generation> and waits for the stream's ack.
func (s *StateStore) PublishTransition(ctx context.Context, t domain.Transition) error {
	ev := events.NewTransitionEvent(t)
	subj, err := events.BreakerEventSubject(t.Service, events.BreakerEvent(t.Kind()))
	if err != nil {
		return err
	}
	msg, err := events.NewMsg(subj, events.NewTransitionEnvelope(s.source, ev), ev)
	if err != nil {
		return err
	}
	ctx, span := tracer.Start(ctx, "send "+subj, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(telemetry.Messaging(subj, "send")...),
		trace.WithAttributes(telemetry.AttrService.String(t.Service), telemetry.AttrTrigger.String(string(t.Trigger)),
			telemetry.AttrState.String(string(t.To)), telemetry.AttrGeneration.Int64(int64(t.Generation))))
	telemetry.Inject(ctx, msg)
	if _, err := s.js.PublishMsg(ctx, msg); err != nil {
		err = fmt.Errorf("breaker: publish %s: %w", subj, err)
		endSpan(span, err)
		return err
	}
	span.End()
	countTransition(ctx, t)
	return nil
}

// archive removes an archived breaker: it publishes the transitions still
// pending for it, then its archived event (Nats-Msg-Id
// "<svc>.<generation>.archived"), then deletes the key if it is still at
// rev. Publishing first means a writer that dies before the delete leaves
// the breaker in place and the command unacknowledged; its redelivery
// publishes the same event again, which the stream drops as a duplicate,
// and deletes the key. A lost compare-and-set returns a conflict, and
// Update folds again on the fresh value.
func (s *StateStore) archive(ctx context.Context, a domain.Archival, pending []domain.Transition, rev uint64) error {
	for _, t := range pending {
		if err := attempt(ctx, func(ctx context.Context) error { return s.PublishTransition(ctx, t) }); err != nil {
			return err
		}
	}
	if err := attempt(ctx, func(ctx context.Context) error { return s.PublishArchived(ctx, a) }); err != nil {
		return err
	}
	return attempt(ctx, func(ctx context.Context) error { return s.Delete(ctx, a.Service, rev) })
}

// PublishArchived publishes a to baldur.event.breaker.<svc>.archived with
// Nats-Msg-Id <svc>.<generation>.archived and waits for the stream's ack.
func (s *StateStore) PublishArchived(ctx context.Context, a domain.Archival) error {
	ev := events.NewArchivedEvent(a)
	subj, err := events.BreakerEventSubject(a.Service, events.BreakerArchived)
	if err != nil {
		return err
	}
	msg, err := events.NewMsg(subj, events.NewArchivedEnvelope(s.source, ev), ev)
	if err != nil {
		return err
	}
	if _, err := s.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("breaker: publish %s: %w", subj, err)
	}
	return nil
}

// Delete deletes svc's key by compare-and-set: only if it is still at
// revision rev (a delete marker, so watchers see the breaker go). A key
// written since returns an error wrapping ErrConflict and
// jetstream.ErrKeyRevisionMismatch; rev 0 is refused, since it would delete
// whatever is there.
func (s *StateStore) Delete(ctx context.Context, svc string, rev uint64) error {
	if rev == 0 {
		return fmt.Errorf("breaker: delete %s: %w: a revision is required", svc, ErrConflict)
	}
	err := s.kv.Delete(ctx, svc, jetstream.LastRevision(rev))
	if isConflict(err) || isWrongLastSequence(err) {
		return fmt.Errorf("breaker: delete %s at revision %d: %w: %w", svc, rev, ErrConflict, jetstream.ErrKeyRevisionMismatch)
	}
	if err != nil {
		return fmt.Errorf("breaker: delete %s: %w", svc, err)
	}
	return nil
}

// isWrongLastSequence reports a compare-and-set conflict as the stream
// reports it to a delete (kv.Delete does not map it to a KV error).
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// casBackoff waits before the attempt-th retry of a lost compare-and-set: a
// random wait below 100µs·2^attempt, at most 20ms, so that writers that
// collided do not collide again in lockstep.
func casBackoff(ctx context.Context, attempt int) error {
	limit := min(100*time.Microsecond<<min(attempt, 10), 20*time.Millisecond)
	t := time.NewTimer(rand.N(limit))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}
