package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
)

// Audit actions written by the audit consumer. Operator DLQ actions have
// their own (store.AuditDLQRequeue, ...), written by the store in the
// transaction that applies them.
const (
	// AuditActionBreakerPrefix prefixes the action of a breaker transition,
	// automatic or manual: "breaker." + the transition's event (opened,
	// half_opened, closed, mode_changed), and of an archived breaker:
	// "breaker.archived". The subject is "breaker:<svc>".
	AuditActionBreakerPrefix = "breaker."
	// AuditActionGovernancePrefix prefixes the action of a governance change:
	// "governance." + the key (kill_switch, emergency_level, error_budget).
	// The subject is "governance:<key>".
	AuditActionGovernancePrefix = "governance."
	// AuditActionKillSwitchOverride is the action of a manual transition
	// applied while the kill switch was on, through override_kill_switch:
	// the details name the transition ("event") as for breaker.<event>.
	AuditActionKillSwitchOverride = "breaker.kill_switch_override"
	// AuditActionReplayBlocked is the action of a replay that governance
	// blocked. The subject is "replay:<svc>". The engine appends it under the
	// blocked event's ce-id when it blocks, so the consumer's copy is the
	// same record.
	AuditActionReplayBlocked = "replay.blocked"
)

// auditSystemActor is the actor of an audit record whose event names none
// and came from no named node (e.g. an error budget the watchdog computed).
const auditSystemActor = "baldur"

// Defaults of AuditOptions.
const (
	// DefaultAuditRetryDelay is how long an event whose record could not be
	// written waits before it is delivered again.
	DefaultAuditRetryDelay = 2 * time.Second
	// DefaultAuditAppendTimeout bounds the append of one record.
	DefaultAuditAppendTimeout = 10 * time.Second
)

// Errors of the audit consumer.
var (
	// ErrAuditNotStarted reports Stop on an Audit that is not running.
	ErrAuditNotStarted = errors.New("replay: audit consumer not started")
	// ErrAuditRunning reports Start on an Audit that is already running.
	ErrAuditRunning = errors.New("replay: audit consumer already running")
)

// AuditStore is what the audit consumer needs of the store (*store.Store).
type AuditStore interface {
	// AppendAuditEvent appends the record of the event with ce-id eventID
	// once; a redelivered event's record is returned with appended false.
	AppendAuditEvent(ctx context.Context, eventID string, r domain.AuditRecord) (domain.AuditRecord, bool, error)
}

// AuditOptions configures an Audit. The zero value is usable.
type AuditOptions struct {
	// Logger receives one line per refused event and per failed append;
	// slog.Default() when nil.
	Logger *slog.Logger
	// Publisher, when set, publishes a rejected event
	// (baldur.event.rejected.event) for an event that cannot be decoded.
	Publisher jetstream.Publisher
	// Clock stamps rejected events; time.Now when nil.
	Clock func() time.Time
	// RetryDelay is DefaultAuditRetryDelay when zero.
	RetryDelay time.Duration
	// AppendTimeout is DefaultAuditAppendTimeout when zero.
	AppendTimeout time.Duration
	// OnRecord, when set, is called after each event has been handled and
	// acked, with the record (appended false for a redelivery) or, for an
	// event that is not audit-worthy, ok false. For tests and metrics.
	OnRecord func(rec domain.AuditRecord, appended, ok bool)
}

// Audit is the audit consumer: it persists every audit-worthy event of
// BALDUR_EVENTS into the hash-chained audit log — every breaker transition,
// automatic ones included (actor: the breaker-worker that folded it), manual
// ones with their actor and reason, a manual one applied through the kill
// switch as breaker.kill_switch_override; archived breakers, governance
// changes and replay blocks. Each event is appended
// exactly once: its message is acked only after the append commits, and a
// redelivered event finds its record by ce-id instead of writing a second.
// Every replay-worker runs one on the shared durable consumer
// (topology.ConsumerAudit).
type Audit struct {
	cons  jetstream.Consumer
	store AuditStore
	opts  AuditOptions
	log   *slog.Logger
	now   func() time.Time

	mu     sync.Mutex
	cc     jetstream.ConsumeContext
	cancel context.CancelFunc
}

// NewAudit returns an audit consumer reading cons (the durable
// topology.ConsumerAudit, or any consumer of BALDUR_EVENTS) and writing to
// st.
func NewAudit(cons jetstream.Consumer, st AuditStore, opts AuditOptions) *Audit {
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = DefaultAuditRetryDelay
	}
	if opts.AppendTimeout <= 0 {
		opts.AppendTimeout = DefaultAuditAppendTimeout
	}
	a := &Audit{cons: cons, store: st, opts: opts, log: opts.Logger, now: opts.Clock}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a
}

// Start begins consuming. It returns once the subscription is set up; events
// are handled in the background until Stop.
func (a *Audit) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cc != nil {
		return ErrAuditRunning
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cc, err := a.cons.Consume(func(msg jetstream.Msg) { a.handle(runCtx, msg) },
		jetstream.PullMaxMessages(256),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			a.log.WarnContext(runCtx, "audit consumer", slog.String("error", err.Error()))
		}))
	if err != nil {
		cancel()
		return fmt.Errorf("replay: start the audit consumer: %w", err)
	}
	a.cc, a.cancel = cc, cancel
	return nil
}

// Stop stops fetching, lets the event being handled finish (its record and
// ack) and returns; unacked buffered events are redelivered later. When ctx
// ends first, the handling in progress is cancelled and ctx's error is
// returned.
func (a *Audit) Stop(ctx context.Context) error {
	a.mu.Lock()
	cc, cancel := a.cc, a.cancel
	a.cc, a.cancel = nil, nil
	a.mu.Unlock()
	if cc == nil {
		return ErrAuditNotStarted
	}
	defer cancel()
	cc.Stop()
	select {
	case <-cc.Closed():
		return nil
	case <-ctx.Done():
		cancel()
		return fmt.Errorf("replay: stop the audit consumer: %w", ctx.Err())
	}
}

// handle records one event and acks it, or leaves it for redelivery when the
// record could not be written.
func (a *Audit) handle(ctx context.Context, msg jetstream.Msg) {
	m, err := events.Decode(msg.Subject(), msg.Headers(), msg.Data())
	if err != nil {
		a.refuse(ctx, msg, err)
		return
	}
	rec, ok, err := AuditRecordFor(m)
	if err != nil {
		a.refuse(ctx, msg, err)
		return
	}
	if !ok {
		a.ack(ctx, msg)
		if a.opts.OnRecord != nil {
			a.opts.OnRecord(domain.AuditRecord{}, false, false)
		}
		return
	}
	actx, cancel := context.WithTimeout(ctx, a.opts.AppendTimeout)
	stored, appended, err := a.store.AppendAuditEvent(actx, m.Envelope.ID, rec)
	cancel()
	if err != nil {
		a.log.ErrorContext(ctx, "audit record not written; the event will be delivered again",
			slog.String("subject", msg.Subject()), slog.String("ce_id", m.Envelope.ID),
			slog.Duration("retry_in", a.opts.RetryDelay), slog.String("error", err.Error()))
		if nerr := msg.NakWithDelay(a.opts.RetryDelay); nerr != nil {
			a.log.WarnContext(ctx, "audit: nak", slog.String("ce_id", m.Envelope.ID), slog.String("error", nerr.Error()))
		}
		return
	}
	a.ack(ctx, msg)
	if a.opts.OnRecord != nil {
		a.opts.OnRecord(stored, appended, true)
	}
}

func (a *Audit) ack(ctx context.Context, msg jetstream.Msg) {
	if err := msg.DoubleAck(ctx); err != nil {
		// The record is committed; a redelivery finds it by ce-id.
		a.log.WarnContext(ctx, "audit: ack", slog.String("subject", msg.Subject()), slog.String("error", err.Error()))
	}
}

// refuse terminates an event that cannot be decoded and reports it as a
// rejected event: it is never audited and never redelivered.
func (a *Audit) refuse(ctx context.Context, msg jetstream.Msg, cause error) {
	a.log.WarnContext(ctx, "audit: malformed event refused",
		slog.String("subject", msg.Subject()), slog.String("error", cause.Error()))
	if a.opts.Publisher != nil {
		rej := events.NewRejected(msg.Subject(), msg.Headers(), len(msg.Data()), cause, a.now().UTC())
		if err := publishRejected(ctx, a.opts.Publisher, rej, a.now()); err != nil {
			a.log.WarnContext(ctx, "audit: publish rejected event", slog.String("error", err.Error()))
		}
	}
	if err := msg.TermWithReason(clipReason(cause.Error())); err != nil {
		a.log.WarnContext(ctx, "audit: term", slog.String("subject", msg.Subject()), slog.String("error", err.Error()))
	}
}

func publishRejected(ctx context.Context, p jetstream.Publisher, rej events.Rejected, now time.Time) error {
	subject, err := events.RejectedSubject(rej.Kind)
	if err != nil {
		return err
	}
	out, err := events.NewMsg(subject, events.NewEnvelopeRandomID(events.TypeRejected, "", now.UTC()), rej)
	if err != nil {
		return err
	}
	_, err = p.PublishMsg(ctx, out)
	return err
}

// clipReason bounds a Term reason (it travels in a header).
func clipReason(s string) string {
	const maxReason = 256
	if len(s) <= maxReason {
		return s
	}
	return s[:maxReason]
}

// AuditRecordFor returns the audit record of a decoded event, and false when
// the event is not audit-worthy (replay results other than blocks, rejected
// inputs, dead-letter events). The actor is the event's; an event that
// names none is attributed to its ce-source, or to "baldur". An error means
// the event's details cannot be encoded.
func AuditRecordFor(m events.Message) (domain.AuditRecord, bool, error) {
	actor := func(named string) string {
		switch {
		case named != "":
			return named
		case m.Envelope.Source != "":
			return m.Envelope.Source
		}
		return auditSystemActor
	}
	var (
		rec     domain.AuditRecord
		details any
	)
	switch ev := m.Payload.(type) {
	case events.TransitionEvent:
		action := AuditActionBreakerPrefix + string(ev.Event())
		if ev.KillSwitchOverride {
			action = AuditActionKillSwitchOverride
		}
		rec = domain.AuditRecord{
			At: ev.At, Actor: actor(ev.Actor), Action: action,
			Subject: "breaker:" + ev.Service, Reason: ev.Reason,
		}
		d := map[string]any{
			"service": ev.Service, "event": ev.Event(), "from": ev.From, "to": ev.To, "from_mode": ev.FromMode, "mode": ev.Mode,
			"trigger": ev.Trigger, "trigger_replay": ev.TriggerReplay, "generation": ev.Generation,
			"window": ev.Window,
		}
		if ev.KillSwitchOverride {
			d["kill_switch_override"] = true
		}
		details = d
	case events.ArchivedEvent:
		rec = domain.AuditRecord{
			At: ev.At, Actor: actor(ev.Actor), Action: AuditActionBreakerPrefix + string(events.BreakerArchived),
			Subject: "breaker:" + ev.Service, Reason: ev.Reason,
		}
		details = map[string]any{
			"service": ev.Service, "cell": ev.Cell, "state": ev.State, "mode": ev.Mode,
			"generation": ev.Generation, "trigger": ev.Trigger, "window": ev.Window,
		}
	case events.GovernanceChange:
		rec = domain.AuditRecord{
			At: ev.At, Actor: actor(ev.Actor), Action: AuditActionGovernancePrefix + string(ev.Key),
			Subject: "governance:" + string(ev.Key), Reason: ev.Reason,
		}
		details = map[string]any{"key": ev.Key, "old": rawOrNull(ev.Old), "new": rawOrNull(ev.New)}
	case events.ReplayBlockedEvent:
		rec = domain.AuditRecord{
			At: ev.At, Actor: actor(ev.Actor), Action: AuditActionReplayBlocked,
			Subject: "replay:" + ev.Service, Reason: ev.Reason,
		}
		d := map[string]any{"service": ev.Service, "gate": ev.Gate}
		if ev.EntryID != "" {
			d["entry_id"] = ev.EntryID
		}
		details = d
	default:
		return domain.AuditRecord{}, false, nil
	}
	if rec.At.IsZero() {
		rec.At = m.Envelope.Time
	}
	b, err := json.Marshal(details)
	if err != nil {
		return domain.AuditRecord{}, false, fmt.Errorf("replay: encode the audit details of %s: %w", m.Subject, err)
	}
	rec.Details = b
	return rec, true, nil
}

func rawOrNull(r json.RawMessage) json.RawMessage {
	if len(r) == 0 {
		return json.RawMessage("null")
	}
	return r
}
