package breaker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/telemetry"
	"github.com/baldurfleet/baldur/internal/topology"
)

// eventNamespace derives the ce-ids of the rejected and governance events the
// worker publishes from the input that caused them, so that an event
// re-published after a crash carries the same Nats-Msg-Id and the events
// stream drops the copy.
var eventNamespace = uuid.MustParse("0c7a3f4e-92d1-4b8e-a6f5-3e1d2c9b8a71")

// derivedID returns the ce-id of the event of kind caused by stream sequence
// seq of BALDUR_INPUT.
func derivedID(kind string, seq uint64) uuid.UUID {
	return uuid.NewSHA1(eventNamespace, []byte(kind+"."+strconv.FormatUint(seq, 10)))
}

// item is one decoded input of a service, at its stream sequence.
type item struct {
	seq uint64
	in  domain.Input
	// idx is the input's index in the batch's messages, to terminate it.
	idx int
	// subject, id, source and size describe the input for a rejected
	// event (id: the report's ce-id; a command carries its own).
	subject, id, source string
	size                int
	// link is the span context the input was published in, if any: the
	// fold's span links to it.
	link trace.SpanContext
}

// group is a service's inputs of one batch segment, in stream order.
type group struct {
	svc   string
	items []item
}

// termination is a malformed message to terminate once the batch is written.
type termination struct {
	idx    int
	reason string
}

// batch is the reusable state of one partition's batches.
type batch struct {
	w      *Worker
	p      int
	ackAll bool

	msgs  []jetstream.Msg
	metas []*jetstream.MsgMetadata
	// groups index order by service; order holds the groups of the current
	// segment (the messages since the last governance command).
	groups map[string]int
	order  []group
	terms  []termination
	out    foldOut
}

func newBatch(w *Worker, p int, ackAll bool) *batch {
	return &batch{w: w, p: p, ackAll: ackAll, groups: map[string]int{}}
}

// load reads the metadata of the fetched messages and reports a gap: a
// consumer sequence other than the expected next one (next 0: any).
func (b *batch) load(next uint64) (gap bool) {
	b.metas = b.metas[:0]
	for _, m := range b.msgs {
		meta, err := m.Metadata()
		if err != nil {
			// Not a JetStream delivery: it cannot be ordered, so treat it as
			// a gap and let the reset redeliver from the ack floor.
			return true
		}
		if next != 0 && meta.Sequence.Consumer != next {
			return true
		}
		next = meta.Sequence.Consumer + 1
		b.metas = append(b.metas, meta)
	}
	return false
}

func (b *batch) lastConsumerSeq() uint64 { return b.metas[len(b.metas)-1].Sequence.Consumer }

// process decodes, groups and folds the loaded batch, then acks it. A
// governance command splits the batch: what came before it is folded first.
func (b *batch) process(ctx context.Context) error {
	w := b.w
	w.stats.batches.Add(1)
	w.stats.messages.Add(int64(len(b.msgs)))
	b.terms = b.terms[:0]
	b.resetGroups()
	for i, m := range b.msgs {
		seq := b.metas[i].Sequence.Stream
		subj := topology.OriginalSubject(m.Subject())
		h := m.Headers()
		data := m.Data()
		msg, err := events.Decode(subj, h, data)
		if err == nil {
			err = b.add(ctx, msg, i, seq, subj, len(data), telemetry.SpanContextOf(h))
		}
		if err != nil {
			if errors.Is(err, errFold) {
				return err
			}
			if err := b.reject(ctx, subj, h, len(data), err, seq); err != nil {
				return err
			}
			b.terms = append(b.terms, termination{idx: i, reason: err.Error()})
		}
	}
	if err := b.flush(ctx); err != nil {
		return err
	}
	if w.crashed.Load() || (w.crashHook != nil && w.crashHook(b.p)) {
		w.crashed.Store(true)
		return errCrashed
	}
	return b.ack()
}

// errFold marks an error of the fold's writes (as opposed to a refused
// input): the batch is not acked.
var errFold = errors.New("breaker: fold failed")

// add routes a decoded message: reports and commands to their service's
// group, governance commands applied at once after the groups so far.
func (b *batch) add(ctx context.Context, msg events.Message, idx int, seq uint64, subj string, size int, link trace.SpanContext) error {
	switch p := msg.Payload.(type) {
	case events.OutcomeReport:
		g := b.groupOf(msg.Subject.Service)
		g.items = append(g.items, item{seq: seq, in: domain.ReportInput(p.Report(msg.Envelope.Source, seq, msg.Envelope.Time)),
			idx: idx, subject: subj, id: msg.Envelope.ID, source: msg.Envelope.Source, size: size, link: link})
	case events.BreakerCommand:
		g := b.groupOf(msg.Subject.Service)
		g.items = append(g.items, item{seq: seq, in: domain.CommandInput(p.Command(msg.Envelope.ID)),
			idx: idx, subject: subj, source: msg.Envelope.Source, size: size, link: link})
	case events.GovernanceCommand:
		if err := b.flush(ctx); err != nil {
			return err
		}
		if err := b.w.applyGovernance(ctx, p, msg.Envelope.ID, seq); err != nil {
			return fmt.Errorf("%w: governance: %w", errFold, err)
		}
	default:
		return fmt.Errorf("%w: %q is not an input of the breaker-workers", events.ErrInvalidSubject, subj)
	}
	return nil
}

func (b *batch) groupOf(svc string) *group {
	if i, ok := b.groups[svc]; ok {
		return &b.order[i]
	}
	b.groups[svc] = len(b.order)
	if len(b.order) < cap(b.order) {
		b.order = b.order[:len(b.order)+1]
		g := &b.order[len(b.order)-1]
		g.svc, g.items = svc, g.items[:0]
		return g
	}
	b.order = append(b.order, group{svc: svc})
	return &b.order[len(b.order)-1]
}

func (b *batch) resetGroups() {
	clear(b.groups)
	b.order = b.order[:0]
}

// flush folds every group of the current segment: one compare-and-set per
// service. Inputs refused for the breaker cap join the terminations.
func (b *batch) flush(ctx context.Context) error {
	if len(b.order) == 0 {
		return nil
	}
	gov := b.w.cfg.Governance.Governance()
	b.out.capped = b.out.capped[:0]
	for i := range b.order {
		if err := b.w.foldGroup(ctx, &b.order[i], gov, &b.out); err != nil {
			return fmt.Errorf("%w: %s: %w", errFold, b.order[i].svc, err)
		}
	}
	b.terms = append(b.terms, b.out.capped...)
	b.resetGroups()
	return nil
}

// ack terminates the malformed messages and acknowledges the rest. Under
// AckAll the terminations come first (each acks everything before it, which
// is written by now) and one ack of the last message covers the batch.
func (b *batch) ack() error {
	// Terminations of inputs refused for the breaker cap are added after
	// the malformed messages of their segment: put them in stream order.
	if !slices.IsSortedFunc(b.terms, byIdx) {
		slices.SortFunc(b.terms, byIdx)
	}
	for _, t := range b.terms {
		if err := b.msgs[t.idx].TermWithReason(clipReason(t.reason)); err != nil {
			return err
		}
	}
	if b.ackAll {
		last := len(b.msgs) - 1
		if len(b.terms) > 0 && b.terms[len(b.terms)-1].idx == last {
			return nil
		}
		return b.msgs[last].Ack()
	}
	t := 0
	for i, m := range b.msgs {
		if t < len(b.terms) && b.terms[t].idx == i {
			t++
			continue
		}
		if err := m.Ack(); err != nil {
			return err
		}
	}
	return nil
}

func byIdx(a, b termination) int { return cmp.Compare(a.idx, b.idx) }

func clipReason(s string) string {
	if len(s) > 256 {
		return s[:256]
	}
	return s
}

// reject publishes the rejected event of a malformed message and counts it.
// Its ce-id derives from the stream sequence, so a redelivery after a crash
// publishes no second event.
func (b *batch) reject(ctx context.Context, subj string, h nats.Header, size int, cause error, seq uint64) error {
	w := b.w
	w.stats.rejected.Add(1)
	now := w.cfg.Clock()
	r := events.NewRejected(subj, h, size, cause, now)
	w.log.WarnContext(ctx, "input rejected", slog.String("subject", r.Subject), slog.String("code", r.Code),
		slog.String("reason", r.Reason), slog.Uint64("seq", seq))
	return w.publishRejected(ctx, r, derivedID("rejected", seq))
}

func (w *Worker) publishRejected(ctx context.Context, r events.Rejected, id uuid.UUID) error {
	subj, err := events.RejectedSubject(r.Kind)
	if err != nil {
		return err
	}
	msg, err := events.NewMsg(subj, events.NewEnvelope(events.TypeRejected, id, w.cfg.Node, r.At), r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if _, err := w.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("%w: publish %s: %w", errFold, subj, err)
	}
	countRejected(ctx, r.Kind)
	return nil
}
