// Package auditanchor anchors the audit log's head outside PostgreSQL, in the
// JetStream stream BALDUR_AUDIT, and reads the anchored heads back for
// verification.
//
// Every writer of the audit log (replay-workers, the watchdog) gives its
// store a Publisher: after each commit that appended a record the store hands
// it the record, and the Publisher publishes its (seq, hash) to
// baldur.audit.head. The stream refuses deletes and purges. `baldur audit
// verify` reads every head (Read) and checks the log against them: a seq that
// was anchored must hold the anchored hash (else the log was rewritten and
// re-hashed), and the log must reach the highest anchored seq (else its tail
// was cut). Heads only add evidence, so publishing the same or an older head
// again (AnchorLast at start) never hides a cut.
package auditanchor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/topology"
)

// DefaultPublishTimeout bounds the publish of one head.
const DefaultPublishTimeout = 5 * time.Second

// Publisher publishes the audit log's head to BALDUR_AUDIT. It implements
// the store's AuditAnchor. It is safe for concurrent use.
type Publisher struct {
	js      jetstream.Publisher
	log     *slog.Logger
	timeout time.Duration

	published, failed atomic.Int64
}

// NewPublisher returns a Publisher over js; log receives one line per head
// that could not be published (nil: slog.Default()).
func NewPublisher(js jetstream.Publisher, log *slog.Logger) *Publisher {
	if log == nil {
		log = slog.Default()
	}
	return &Publisher{js: js, log: log, timeout: DefaultPublishTimeout}
}

// AnchorAuditHead publishes the head of rec and waits for the stream's ack,
// at most DefaultPublishTimeout. A failure is logged and counted: the record
// is committed, and the next head anchored covers it through the chain.
func (p *Publisher) AnchorAuditHead(ctx context.Context, rec domain.AuditRecord) {
	if err := p.Publish(ctx, rec); err != nil {
		p.log.WarnContext(ctx, "audit head not anchored; the next append anchors a later one",
			slog.Int64("seq", rec.Seq), slog.String("error", err.Error()))
	}
}

// Publish publishes the head of rec and returns the error, counted.
func (p *Publisher) Publish(ctx context.Context, rec domain.AuditRecord) error {
	msg, err := events.NewAuditHeadMsg(events.NewAuditHead(rec))
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout)
		_, err = p.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(topology.StreamAudit))
		cancel()
	}
	if err != nil {
		p.failed.Add(1)
		return fmt.Errorf("anchor audit head %d: %w", rec.Seq, err)
	}
	p.published.Add(1)
	return nil
}

// Stats are a Publisher's counts.
type Stats struct {
	// Published counts heads stored by BALDUR_AUDIT.
	Published int64
	// Failed counts heads that could not be published.
	Failed int64
}

// Stats returns the counts so far.
func (p *Publisher) Stats() Stats {
	return Stats{Published: p.published.Load(), Failed: p.failed.Load()}
}

// LastRecord is what AnchorLast needs of the store (*store.Store).
type LastRecord interface {
	LastAudit(ctx context.Context) (domain.AuditRecord, bool, error)
}

// AnchorLast publishes the head of the log as it is in the database: a
// writer does it at start, so a head whose publish failed before a restart
// is anchored. An empty log anchors nothing.
func AnchorLast(ctx context.Context, st LastRecord, p *Publisher) error {
	rec, ok, err := st.LastAudit(ctx)
	if err != nil || !ok {
		return err
	}
	return p.Publish(ctx, rec)
}

// Heads is what Read found in BALDUR_AUDIT.
type Heads struct {
	// Anchors are the valid heads.
	Anchors domain.AuditAnchors
	// Malformed counts messages that are not a valid head; they are
	// skipped (no writer publishes one: something else did).
	Malformed int
}

// readBatch is how many heads Read fetches at a time.
const readBatch = 1000

// ErrNoStream reports that BALDUR_AUDIT does not exist: no writer of the
// audit log has started against this NATS.
var ErrNoStream = errors.New("auditanchor: stream BALDUR_AUDIT does not exist: no replay-worker or watchdog has started against this NATS")

// Read reads every head BALDUR_AUDIT holds, up to its last message when the
// read starts, with an ordered consumer.
func Read(ctx context.Context, js jetstream.JetStream) (*Heads, error) {
	s, err := js.Stream(ctx, topology.StreamAudit)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoStream
	}
	if err != nil {
		return nil, fmt.Errorf("auditanchor: look up %s: %w", topology.StreamAudit, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("auditanchor: read %s: %w", topology.StreamAudit, err)
	}
	out := &Heads{}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return out, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.SubjectAuditHead}})
	if err != nil {
		return nil, fmt.Errorf("auditanchor: read %s: %w", topology.StreamAudit, err)
	}
	for {
		batch, err := cons.Fetch(readBatch, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("auditanchor: read %s: %w", topology.StreamAudit, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				return nil, fmt.Errorf("auditanchor: read %s: %w", topology.StreamAudit, err)
			}
			if h, err := events.DecodeAuditHead(msg.Data()); err != nil {
				out.Malformed++
			} else {
				out.Anchors.Add(h.Head())
			}
			if meta.Sequence.Stream >= last {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("auditanchor: read %s: %w", topology.StreamAudit, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("auditanchor: read %s: %w", topology.StreamAudit, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("auditanchor: read %s: no message up to seq %d within 5s", topology.StreamAudit, last)
		}
	}
}
