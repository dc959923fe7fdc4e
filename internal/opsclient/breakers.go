package opsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
)

// Applied is the outcome of a breaker command the fleet accepted.
type Applied struct {
	// CommandID is the command's ce-id; empty when nothing was published.
	CommandID string `json:"command_id,omitempty"`
	// Service is the breaker's service.
	Service string `json:"service"`
	// NoChange is true when the breaker already was as the command asks
	// (mode already set, no override to clear): the fleet would change
	// nothing, so nothing was published, or nothing changed before the
	// timeout while the state already matched.
	NoChange bool `json:"no_change"`
	// Breaker is the breaker's state after the command.
	Breaker domain.Breaker `json:"breaker"`
	// Revision is the KV revision of that state (0 when it does not exist).
	Revision uint64 `json:"revision"`
}

// BreakerUpdate is one change seen by WatchBreakers.
type BreakerUpdate struct {
	// Service is the key that changed.
	Service string `json:"service"`
	// Breaker is the new state; zero when Deleted.
	Breaker domain.Breaker `json:"breaker"`
	// Revision is the KV revision of the change.
	Revision uint64 `json:"revision"`
	// Deleted is true when the breaker was deleted or purged.
	Deleted bool `json:"deleted,omitempty"`
	// Initial is true for the values present when the watch started.
	Initial bool `json:"initial,omitempty"`
}

// Breaker returns svc's breaker state and its KV revision. A breaker that
// has never been written is ErrNotFound.
func (c *Client) Breaker(ctx context.Context, svc string) (domain.Breaker, uint64, error) {
	if err := events.ValidateServiceName(svc); err != nil {
		return domain.Breaker{}, 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	e, err := c.breakers.Get(ctx, svc)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return domain.Breaker{}, 0, fmt.Errorf("%w: no breaker for service %q", ErrNotFound, svc)
	}
	if err != nil {
		return domain.Breaker{}, 0, natsErr("read breaker "+svc, err)
	}
	b, err := breaker.DecodeState(svc, e.Value())
	if err != nil {
		return domain.Breaker{}, 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return b, e.Revision(), nil
}

// Breakers returns every breaker, ordered by service. Values that do not
// decode are skipped.
func (c *Client) Breakers(ctx context.Context) ([]domain.Breaker, error) {
	lister, err := c.breakers.ListKeys(ctx)
	if err != nil {
		return nil, natsErr("list breakers", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	_ = lister.Stop() // the listing has ended; Stop only releases it
	slices.Sort(keys)
	out := make([]domain.Breaker, 0, len(keys))
	for _, k := range keys {
		b, _, err := c.Breaker(ctx, k)
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// WatchBreakers streams every breaker's state: first the current values
// (Initial), then each change, until ctx ends; the channel is closed then.
func (c *Client) WatchBreakers(ctx context.Context) (<-chan BreakerUpdate, error) {
	w, err := c.breakers.WatchAll(ctx)
	if err != nil {
		return nil, natsErr("watch breakers", err)
	}
	out := make(chan BreakerUpdate, 64)
	go func() {
		defer close(out)
		defer func() { _ = w.Stop() }()
		initial := true
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					initial = false
					continue
				}
				u := BreakerUpdate{Service: e.Key(), Revision: e.Revision(), Initial: initial}
				if e.Operation() != jetstream.KeyValuePut {
					u.Deleted = true
				} else if b, err := breaker.DecodeState(e.Key(), e.Value()); err == nil {
					u.Breaker = b
				} else {
					continue
				}
				select {
				case out <- u:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// alreadyDone reports whether cmd would change nothing on b: the fleet
// neither writes nor publishes anything for such a command (the fold's
// ErrNoChange), so waiting for it is pointless. open and close always apply
// (they renew the manual expiry); override always applies or is refused.
func alreadyDone(b domain.Breaker, found bool, cmd events.BreakerCommand) bool {
	if !found {
		// A new breaker is closed and auto.
		b = domain.NewBreaker("")
	}
	switch cmd.Action {
	case domain.ActionAuto:
		return b.Mode == domain.ModeAuto
	case domain.ActionDisable:
		return b.Mode == domain.ModeDisabled
	case domain.ActionMetricsOnly:
		return b.Mode == domain.ModeMetricsOnly
	case domain.ActionClearOverride:
		return b.Override == nil
	}
	return false
}

// BreakerCommand publishes cmd for svc's breaker with a fresh ce-id and
// waits until a breaker-worker applied it (the stored state's
// last_command_id is the ce-id), refused it (a rejected event of kind
// control with the ce-id: a *RefusedError), or the apply timeout passed
// (ErrNotApplied).
//
// A command that would change nothing (the mode is already the one asked
// for, there is no override to clear) is not published: the fleet would
// ignore it silently. The result then has NoChange set. The same holds when
// the timeout passes and the state matches the command by then.
func (c *Client) BreakerCommand(ctx context.Context, svc string, cmd events.BreakerCommand) (Applied, error) {
	subject, err := events.ControlSubject(svc)
	if err != nil {
		return Applied{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := cmd.Validate(); err != nil {
		return Applied{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	cur, rev, err := c.Breaker(ctx, svc)
	found := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Applied{}, err
	}
	if alreadyDone(cur, found, cmd) {
		if !found {
			cur = domain.NewBreaker(svc)
		}
		return Applied{Service: svc, NoChange: true, Breaker: cur, Revision: rev}, nil
	}

	id := uuid.New()
	timer, limit := c.commandTimer(ctx, &cmd.ValidUntil)
	defer timer.Stop()
	msg, err := events.NewMsg(subject, events.NewEnvelope(events.TypeControl, id, c.source, c.now().UTC()), cmd)
	if err != nil {
		return Applied{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	rejected, unsub, err := c.rejections(events.RejectedControl)
	if err != nil {
		return Applied{}, err
	}
	defer unsub()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch, err := c.breakers.Watch(wctx, svc)
	if err != nil {
		return Applied{}, natsErr("watch breaker "+svc, err)
	}
	defer func() { _ = watch.Stop() }()
	if _, err := c.js.PublishMsg(ctx, msg); err != nil {
		return Applied{}, natsErr("publish the command to "+subject, err)
	}

	want := id.String()
	last, lastRev, lastFound := cur, rev, found
	for {
		select {
		case e, ok := <-watch.Updates():
			if !ok {
				return Applied{}, fmt.Errorf("%w: the watch of breaker %s ended", ErrUnreachable, svc)
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			b, err := breaker.DecodeState(svc, e.Value())
			if err != nil {
				continue
			}
			last, lastRev, lastFound = b, e.Revision(), true
			if b.LastCommandID == want {
				return Applied{CommandID: want, Service: svc, Breaker: b, Revision: e.Revision()}, nil
			}
		case r := <-rejected:
			if r.CEID == want {
				return Applied{}, &RefusedError{CommandID: want, Code: r.Code, Reason: r.Reason}
			}
		case <-timer.C:
			if lastFound && alreadyDone(last, true, cmd) {
				return Applied{CommandID: want, Service: svc, NoChange: true, Breaker: last, Revision: lastRev}, nil
			}
			return Applied{}, fmt.Errorf("%w: no breaker-worker applied the command %s to %s within %s; it was valid until %s, so none will apply it later",
				ErrNotApplied, want, svc, limit, cmd.ValidUntil.Format(time.RFC3339))
		case <-ctx.Done():
			return Applied{}, fmt.Errorf("%w: waiting for command %s on %s: %w", ErrNotApplied, want, svc, ctx.Err())
		}
	}
}

// rejections subscribes to baldur.event.rejected.<kind> and returns the
// decoded events. The subscription is registered with the server before
// rejections returns, so a command published afterwards cannot be refused
// unseen.
func (c *Client) rejections(kind events.RejectedKind) (<-chan events.Rejected, func(), error) {
	subject, err := events.RejectedSubject(kind)
	if err != nil {
		return nil, nil, err
	}
	out := make(chan events.Rejected, 64)
	sub, err := c.nc.Subscribe(subject, func(m *nats.Msg) {
		var r events.Rejected
		if json.Unmarshal(m.Data, &r) != nil {
			return
		}
		select {
		case out <- r:
		default: // the waiter reads continuously; a flood of others' refusals is dropped
		}
	})
	if err != nil {
		return nil, nil, natsErr("subscribe to "+subject, err)
	}
	if err := c.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, nil, natsErr("subscribe to "+subject, err)
	}
	return out, func() { _ = sub.Unsubscribe() }, nil
}

// ActionFor returns the breaker action of a CLI or API verb: open, close,
// auto, disable, metrics-only (or metrics_only), override, clear-override
// (or clear_override).
func ActionFor(verb string) (domain.Action, bool) {
	a := domain.Action(strings.ReplaceAll(verb, "-", "_"))
	if !a.Valid() || a == domain.ActionHalfOpen {
		return "", false
	}
	return a, true
}

// TimeInState returns how long b has been in its state at now: since its
// last transition, or 0 when it never had one.
func TimeInState(b domain.Breaker, now time.Time) time.Duration {
	if b.LastTransition == nil || b.LastTransition.At.IsZero() {
		return 0
	}
	return max(now.Sub(b.LastTransition.At), 0)
}
