package opsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
)

// GovernanceStatus is the fleet's governance state as stored in
// baldur_governance: kill switch, emergency level, error budget, and the
// watchdog's fleet aggregate.
type GovernanceStatus struct {
	domain.Governance
	// Aggregate is the fleet-wide failure rate the watchdog last computed;
	// zero when no watchdog has run.
	Aggregate domain.FleetAggregate `json:"aggregate"`
}

// GovernanceApplied is the outcome of a governance command the fleet
// accepted.
type GovernanceApplied struct {
	// CommandID is the command's ce-id; empty when nothing was published.
	CommandID string `json:"command_id,omitempty"`
	// NoChange is true when the key already held what the command asks
	// for; nothing was published.
	NoChange bool `json:"no_change"`
	// Status is the governance state after the command.
	Status GovernanceStatus `json:"status"`
}

// GovernanceState reads the governance keys. A key never written reads as
// its zero value (kill switch off, NORMAL, error-budget gate off).
func (c *Client) GovernanceState(ctx context.Context) (GovernanceStatus, error) {
	var st GovernanceStatus
	for _, k := range []struct {
		key string
		dst any
	}{
		{domain.GovernanceKeyKillSwitch, &st.KillSwitch},
		{domain.GovernanceKeyEmergencyLevel, &st.Emergency},
		{domain.GovernanceKeyErrorBudget, &st.ErrorBudget},
		{domain.GovernanceKeyAggregate, &st.Aggregate},
	} {
		e, err := c.governance.Get(ctx, k.key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return GovernanceStatus{}, natsErr("read governance key "+k.key, err)
		}
		if err := json.Unmarshal(e.Value(), k.dst); err != nil {
			return GovernanceStatus{}, fmt.Errorf("%w: governance key %s holds %q: %v", ErrInvalid, k.key, clipBytes(e.Value(), 128), err)
		}
	}
	return st, nil
}

// governanceKey returns the key a governance action writes.
func governanceKey(a events.GovernanceAction) string {
	switch a {
	case events.ActionKillSwitchOn, events.ActionKillSwitchOff:
		return domain.GovernanceKeyKillSwitch
	case events.ActionSetEmergencyLevel:
		return domain.GovernanceKeyEmergencyLevel
	}
	return domain.GovernanceKeyErrorBudget
}

// governanceHolds reports whether g already is what cmd asks for, by the
// same rules the breaker-worker uses to find a command changes nothing.
func governanceHolds(g domain.Governance, cmd events.GovernanceCommand) bool {
	switch cmd.Action {
	case events.ActionKillSwitchOn:
		return g.KillSwitch.Active
	case events.ActionKillSwitchOff:
		return !g.KillSwitch.Active
	case events.ActionSetEmergencyLevel:
		return cmd.Level != nil && g.Emergency.Level == *cmd.Level
	case events.ActionSetSLOTarget:
		if cmd.SLOTarget == nil {
			return false
		}
		if *cmd.SLOTarget == 0 {
			return !g.ErrorBudget.Enabled
		}
		window := cmd.SLOWindow.D()
		if window == 0 {
			window = domain.DefaultSLOWindow
		}
		return g.ErrorBudget.Enabled && g.ErrorBudget.SLOTarget == *cmd.SLOTarget && g.ErrorBudget.Window() == window
	}
	return false
}

// decodeGovernanceKey decodes a value of key into g's field.
func decodeGovernanceKey(g *domain.Governance, key string, v []byte) error {
	switch key {
	case domain.GovernanceKeyKillSwitch:
		return json.Unmarshal(v, &g.KillSwitch)
	case domain.GovernanceKeyEmergencyLevel:
		return json.Unmarshal(v, &g.Emergency)
	}
	return json.Unmarshal(v, &g.ErrorBudget)
}

// Governance publishes cmd to baldur.governance with a fresh ce-id and waits
// until the governance key it writes holds the new value, a rejected event
// of kind governance with its ce-id arrives (*RefusedError), or the apply
// timeout passes (ErrNotApplied). A command the key already satisfies (the
// kill switch is already on, the level already set) is not published; the
// result has NoChange set.
func (c *Client) Governance(ctx context.Context, cmd events.GovernanceCommand) (GovernanceApplied, error) {
	if err := cmd.Validate(); err != nil {
		return GovernanceApplied{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	cur, err := c.GovernanceState(ctx)
	if err != nil {
		return GovernanceApplied{}, err
	}
	if governanceHolds(cur.Governance, cmd) {
		return GovernanceApplied{NoChange: true, Status: cur}, nil
	}
	id := uuid.New()
	timer, limit := c.commandTimer(ctx, &cmd.ValidUntil)
	defer timer.Stop()
	msg, err := events.NewMsg(events.SubjectGovernance, events.NewEnvelope(events.TypeGovernance, id, c.source, c.now().UTC()), cmd)
	if err != nil {
		return GovernanceApplied{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	rejected, unsub, err := c.rejections(events.RejectedGovernance)
	if err != nil {
		return GovernanceApplied{}, err
	}
	defer unsub()
	key := governanceKey(cmd.Action)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch, err := c.governance.Watch(wctx, key)
	if err != nil {
		return GovernanceApplied{}, natsErr("watch governance key "+key, err)
	}
	defer func() { _ = watch.Stop() }()
	if _, err := c.js.PublishMsg(ctx, msg); err != nil {
		return GovernanceApplied{}, natsErr("publish the command to "+events.SubjectGovernance, err)
	}
	want := id.String()
	g := cur.Governance
	for {
		select {
		case e, ok := <-watch.Updates():
			if !ok {
				return GovernanceApplied{}, fmt.Errorf("%w: the watch of governance key %s ended", ErrUnreachable, key)
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut || decodeGovernanceKey(&g, key, e.Value()) != nil {
				continue
			}
			if governanceHolds(g, cmd) {
				st, err := c.GovernanceState(ctx)
				if err != nil {
					return GovernanceApplied{}, err
				}
				return GovernanceApplied{CommandID: want, Status: st}, nil
			}
		case r := <-rejected:
			if r.CEID == want {
				return GovernanceApplied{}, &RefusedError{CommandID: want, Code: r.Code, Reason: r.Reason}
			}
		case <-timer.C:
			return GovernanceApplied{}, fmt.Errorf("%w: no breaker-worker applied the governance command %s within %s; it was valid until %s, so none will apply it later",
				ErrNotApplied, want, limit, cmd.ValidUntil.Format(time.RFC3339))
		case <-ctx.Done():
			return GovernanceApplied{}, fmt.Errorf("%w: waiting for governance command %s: %w", ErrNotApplied, want, ctx.Err())
		}
	}
}

func clipBytes(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
