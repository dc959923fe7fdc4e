package breaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
)

// foldOut collects what one fold of a group did; the fold may run more than
// once (compare-and-set retries), so it is reset at the start of each run and
// read only after the write succeeded.
type foldOut struct {
	reports, ignored, applied, duplicates, noops int64
	refusals                                     []refusal
	overridden                                   []domain.Command
	// capped are the inputs refused for the breaker cap, to terminate.
	// reset leaves them: they gather over a flush's groups and segments,
	// and the batch takes them when the flush is done.
	capped []termination
}

// refusal is a command the breaker refused, to publish as a rejected event.
type refusal struct {
	it   *item
	cmd  domain.Command
	code string
	err  error
}

func (o *foldOut) reset() {
	o.reports, o.ignored, o.applied, o.duplicates, o.noops = 0, 0, 0, 0, 0
	o.refusals = o.refusals[:0]
	o.overridden = o.overridden[:0]
}

// Codes of the rejected events that carry a command the breaker refused.
const (
	CodeKillSwitchOn         = "kill_switch_on"
	CodeInvalidCommand       = "invalid_command"
	CodeOverrideRenewalLimit = "override_renewal_limit"
	// CodeCommandExpired: the command reached the breaker after its
	// valid_until; it is not applied.
	CodeCommandExpired = "command_expired"
)

// CodeBreakerCap is the rejected-event code of an input refused because it
// would create a breaker while the fleet holds Config.MaxBreakers live ones.
const CodeBreakerCap = "breaker_cap"

// refusalCode returns the rejected-event code of a command refusal, or "" for
// an outcome that is a no-op (nothing to change, not due, duplicate).
func refusalCode(err error) string {
	switch {
	case errors.Is(err, domain.ErrKillSwitchOn):
		return CodeKillSwitchOn
	case errors.Is(err, domain.ErrOverrideRenewalLimit):
		return CodeOverrideRenewalLimit
	case errors.Is(err, domain.ErrCommandExpired):
		return CodeCommandExpired
	case errors.Is(err, domain.ErrInvalidCommand), errors.Is(err, domain.ErrInvalidReport), errors.Is(err, domain.ErrUnknownInput):
		return CodeInvalidCommand
	}
	return ""
}

// foldGroup folds a service's inputs in stream order with one
// compare-and-set. Inputs at or below the breaker's last_seq were folded
// before (a redelivery) and are skipped; last_seq advances past every input,
// commands included, so the stored state is the service's checkpoint.
//
// An applied archive command ends a segment: the breaker folded so far is
// archived (its key deleted), and the inputs after it are folded into a new
// breaker with a second compare-and-set.
func (w *Worker) foldGroup(ctx context.Context, g *group, gov domain.Governance, out *foldOut) (err error) {
	ctx, span := startFold(ctx, g)
	defer func() { endSpan(span, err) }()
	for start := 0; start < len(g.items); {
		next, err := w.foldSegment(ctx, g, start, gov, out)
		if err != nil {
			return err
		}
		start = next
	}
	return nil
}

// foldSegment folds g.items[start:] up to and including the first applied
// archive command and returns the index of the first input it left.
func (w *Worker) foldSegment(ctx context.Context, g *group, start int, gov domain.Governance, out *foldOut) (int, error) {
	env := domain.Env{Now: w.cfg.Clock(), Config: w.cfg.Configs.Config(g.svc), Governance: gov}
	var (
		trans []domain.Transition
		stop  int
	)
	fold := func(cur domain.Breaker) (domain.Breaker, domain.Result) {
		out.reset()
		trans = trans[:0]
		stop = len(g.items)
		var total domain.Result
		// One Fold per attempt: the window is copied once per batch, not
		// once per report.
		b := domain.NewFold(cur)
		for i := start; i < len(g.items); i++ {
			it := &g.items[i]
			if it.seq <= b.LastSeq() {
				out.ignored++
				continue
			}
			res := b.Apply(it.in, env)
			if res.Changed {
				trans = append(trans, res.Transitions...)
			}
			if it.in.Kind == domain.InputReport {
				out.reports++
			} else {
				switch {
				case res.Ignored:
					out.duplicates++
				case res.Applied:
					out.applied++
					if res.KillSwitchOverridden {
						out.overridden = append(out.overridden, it.in.Command)
					}
				case res.Err != nil:
					if code := refusalCode(res.Err); code != "" {
						out.refusals = append(out.refusals, refusal{it: it, cmd: it.in.Command, code: code, err: res.Err})
					} else {
						out.noops++
					}
				}
			}
			b.SetLastSeq(it.seq)
			total.Changed = true
			if res.Archive != nil {
				total.Archive = res.Archive
				stop = i + 1
				break
			}
		}
		total.Transitions = trans
		return b.Breaker(), total
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	_, res, err := w.store.update(ctx, g.svc, fold, w.admitNew)
	if err != nil {
		if errors.Is(err, ErrBreakerCap) {
			return stop, w.refuseNew(ctx, g, start, stop, env.Now, err, out)
		}
		if errors.Is(err, ErrBadState) {
			// An undecodable value cannot be folded into; leave it to an
			// operator and do not redeliver for ever.
			w.stats.badState.Add(1)
			w.log.ErrorContext(ctx, "breaker state undecodable; inputs skipped", slog.String("service", g.svc), slog.Any("error", err))
			return len(g.items), nil
		}
		return 0, err
	}
	if a := res.Archive; a != nil {
		w.stats.archived.Add(1)
		w.log.InfoContext(ctx, "breaker archived", slog.String("service", g.svc), slog.String("cell", a.Cell),
			slog.Uint64("generation", a.Generation), slog.String("trigger", string(a.Trigger)),
			slog.String("actor", a.Actor), slog.String("reason", a.Reason))
	}
	w.stats.writes.Add(1)
	w.stats.reports.Add(out.reports)
	w.stats.ignored.Add(out.ignored)
	w.stats.commands.Add(out.applied)
	w.stats.duplicates.Add(out.duplicates)
	w.stats.noops.Add(out.noops)
	for _, c := range out.overridden {
		w.stats.killSwitchOverrides.Add(1)
		w.log.WarnContext(ctx, "kill switch overridden by a manual breaker command",
			slog.String("service", g.svc), slog.String("action", string(c.Action)),
			slog.String("actor", c.Actor), slog.String("reason", c.Reason), slog.String("command_id", c.ID))
	}
	for _, r := range out.refusals {
		w.stats.refused.Add(1)
		w.log.WarnContext(ctx, "breaker command refused", slog.String("service", g.svc),
			slog.String("action", string(r.cmd.Action)), slog.String("actor", r.cmd.Actor),
			slog.String("code", r.code), slog.Any("error", r.err))
		rej := events.Rejected{
			Kind:    events.RejectedControl,
			Code:    r.code,
			Subject: r.it.subject,
			Reason:  clipReason1k(r.err.Error()),
			CEID:    r.cmd.ID,
			CEType:  string(events.TypeControl),
			Source:  r.it.source,
			Size:    r.it.size,
			At:      env.Now,
		}
		if err := w.publishRejected(ctx, rej, derivedID("refused", r.it.seq)); err != nil {
			// The command is folded (refused) and checkpointed; losing its
			// event is logged rather than refolding the batch.
			w.log.WarnContext(ctx, "refusal event not published", slog.String("service", g.svc), slog.Any("error", err))
		}
	}
	return stop, nil
}

func clipReason1k(s string) string {
	if len(s) > 1024 {
		return s[:1024]
	}
	return s
}

// admitNew says whether a new breaker may be created: not while the fleet
// holds MaxBreakers live breakers or more. The count is what the worker's
// watch of baldur_breakers has seen, so breakers other workers are creating
// at the same moment are not in it yet (docs/operations.md, Sizing).
func (w *Worker) admitNew() error {
	if n := w.cfg.Breakers.Len(); n >= w.cfg.MaxBreakers {
		return fmt.Errorf("%w: the fleet holds %d live breakers, at most %d (--max-breakers, BALDUR_MAX_BREAKERS); "+
			"no breaker is created until idle ones are archived or the cap is raised", ErrBreakerCap, n, w.cfg.MaxBreakers)
	}
	return nil
}

// refuseNew rejects the inputs g.items[start:stop] of a service that has no
// breaker, refused for the cap (cause): one rejected event each (code
// breaker_cap, kind outcome or control, ce-id derived from the stream
// sequence so a redelivery publishes no second one), and each is
// terminated with the batch. Nothing was written.
func (w *Worker) refuseNew(ctx context.Context, g *group, start, stop int, now time.Time, cause error, out *foldOut) error {
	reason := fmt.Sprintf("%s has no breaker and none is created: %s", g.svc, cause.Error())
	w.log.WarnContext(ctx, "breaker cap reached; inputs of a new breaker rejected", slog.String("service", g.svc),
		slog.Int("inputs", stop-start), slog.Int("live", w.cfg.Breakers.Len()), slog.Int("max_breakers", w.cfg.MaxBreakers))
	for i := start; i < stop; i++ {
		it := &g.items[i]
		rej := events.Rejected{Kind: events.RejectedOutcome, Code: CodeBreakerCap, Subject: it.subject,
			Reason: clipReason1k(reason), CEID: it.id, CEType: string(events.TypeOutcome), Source: it.source, Size: it.size, At: now}
		if it.in.Kind == domain.InputCommand {
			rej.Kind, rej.CEID, rej.CEType = events.RejectedControl, it.in.Command.ID, string(events.TypeControl)
		}
		if err := w.publishRejected(ctx, rej, derivedID("breaker_cap", it.seq)); err != nil {
			return err
		}
		w.stats.capped.Add(1)
		out.capped = append(out.capped, termination{idx: it.idx, reason: CodeBreakerCap + ": " + cause.Error()})
	}
	return nil
}
