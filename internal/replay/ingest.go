package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/topology"
)

// Errors of Ingest.
var (
	// ErrIngestRunning reports a Start of an Ingest that is already running.
	ErrIngestRunning = errors.New("replay: ingest already started")
	// ErrIngestDeps reports a missing dependency of NewIngest.
	ErrIngestDeps = errors.New("replay: ingest is missing a dependency")
	// ErrBacklogFull is the cause of a dead letter refused because its
	// service has IngestConfig.MaxPendingPerService live entries in
	// PostgreSQL; its rejected event has code CodeBacklogFull.
	ErrBacklogFull = errors.New("replay: dead-letter backlog full")
)

// CodeBacklogFull is the code of the rejected event of a dead letter refused
// because its service is at IngestConfig.MaxPendingPerService.
const CodeBacklogFull = "backlog_full"

// Inserter is the part of the store Ingest writes through (store.Store has
// it): a batched, idempotent insert of new dead letters, and what the
// per-service bound on live entries reads.
type Inserter interface {
	// InsertEntries inserts new entries, skipping duplicates, and adds the
	// entries inserted to their services' live counts.
	InsertEntries(ctx context.Context, entries []domain.DLQEntry) (store.InsertResult, error)
	// LiveCounts returns the services' estimated live counts, absent for a
	// service without one.
	LiveCounts(ctx context.Context, services []string) (map[string]store.LiveCount, error)
	// RecountLive counts the services' live entries exactly, at now.
	RecountLive(ctx context.Context, services []string, now time.Time) (map[string]int64, error)
	// StoredEntries returns the ids of the entries InsertEntries would skip
	// as duplicates of stored ones.
	StoredEntries(ctx context.Context, entries []domain.DLQEntry) ([]string, error)
}

// IngestDeps are the dependencies of an Ingest.
type IngestDeps struct {
	// Store receives the entries. Required.
	Store Inserter
	// JS is the JetStream context of BALDUR_DLQ and BALDUR_EVENTS. Required.
	JS jetstream.JetStream
	// NodeID is ce-source of the rejected events Ingest publishes.
	NodeID string
	// Clock is the time of ingest and of rejections; default time.Now.
	Clock func() time.Time
	// Logger receives warnings (PostgreSQL down, publish failures); default
	// slog.Default().
	Logger *slog.Logger
}

// IngestStats counts what an Ingest did since it was created.
type IngestStats struct {
	// Received is the number of messages fetched, redeliveries included.
	Received uint64
	// Inserted is the number of entries stored.
	Inserted uint64
	// Duplicates is the number of dead letters acked without a new row: an
	// entry with the same id, or a live entry with the same (service,
	// idempotency_key), existed.
	Duplicates uint64
	// Rejected is the number of malformed dead letters terminated and
	// published to baldur.event.rejected.dlq.
	Rejected uint64
	// BacklogFull is the number of dead letters terminated and published to
	// baldur.event.rejected.dlq with code backlog_full because their service
	// had IngestConfig.MaxPendingPerService live entries in PostgreSQL. Not
	// counted in Rejected.
	BacklogFull uint64
	// StoreErrors is the number of failed attempts to insert a batch.
	StoreErrors uint64
	// Paused reports that the last attempt to insert a batch failed: ingest
	// holds its batches and retries with backoff.
	Paused bool
}

// Ingest moves dead letters from the work queue BALDUR_DLQ into PostgreSQL.
//
// It fetches up to IngestConfig.Batch messages at a time from the durable
// consumer topology.ConsumerReplayIngest, decodes each (the entry's id is
// ce-id, its service the subject's), inserts the batch with one idempotent
// statement and acks each message only after the insert has committed.
// Fetching the next batch overlaps with inserting the previous ones.
//
// A malformed dead letter is published to baldur.event.rejected.dlq with the
// reason, then terminated, so that it is neither redelivered nor silently
// dropped. So is a dead letter whose service has
// IngestConfig.MaxPendingPerService live entries in PostgreSQL (code
// backlog_full): before each batch is inserted, Ingest reads the estimated
// live count of every service in it (one query; an exact recount only for a
// service at its bound, at most every IngestConfig.PendingRecount, and for a
// service whose count is unknown or older than MaxPendingRecountAge) and
// keeps of each service only the dead letters it has room for, in stream
// order. The others are looked up (one query): those already stored, a
// redelivery, are acked as duplicates, the rest refused. Two writers that
// read a service's count at the same time both admit up to its room, so the
// bound may be passed by up to one batch per other writer inserting for
// that service at that moment (IngestConfig.Writers per replay-worker).
// While PostgreSQL fails, Ingest keeps the batches it holds (telling
// the server it is still working on them), stops fetching, and retries with
// exponential backoff: nothing is acked, so nothing is lost. Any number of
// replay-workers may run an Ingest on the same consumer; each message goes to
// one of them.
type Ingest struct {
	cfg    IngestConfig
	store  Inserter
	js     jetstream.JetStream
	nodeID string
	now    func() time.Time
	log    *slog.Logger

	mu      sync.Mutex
	running bool
	stopFetch,
	stopWrite context.CancelFunc
	done chan struct{}
	// refresh is how often held messages are marked in progress: a third of
	// the consumer's ack wait.
	refresh time.Duration

	received, inserted, duplicates, rejected, backlogFull, storeErrors atomic.Uint64
	paused                                                             atomic.Bool

	// refusedMu guards refusedLog: per service, when its refusals were last
	// logged and how many came since.
	refusedMu  sync.Mutex
	refusedLog map[string]refusedLine
}

// refusedLogEvery is the least time between two log lines about one
// service's refusals at the bound; each line says how many were refused
// since the last.
const refusedLogEvery = 10 * time.Second

type refusedLine struct {
	at time.Time
	n  int
}

// NewIngest returns an Ingest with cfg (zero fields take their defaults).
func NewIngest(cfg IngestConfig, deps IngestDeps) (*Ingest, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.JS == nil {
		return nil, fmt.Errorf("%w: Store and JS are required", ErrIngestDeps)
	}
	in := &Ingest{cfg: cfg, store: deps.Store, js: deps.JS, nodeID: deps.NodeID, now: deps.Clock, log: deps.Logger}
	if in.now == nil {
		in.now = time.Now
	}
	if in.log == nil {
		in.log = slog.Default()
	}
	in.log = in.log.With(slog.String("component", "replay.ingest"))
	return in, nil
}

// Stats returns the counters.
func (in *Ingest) Stats() IngestStats {
	return IngestStats{
		Received:    in.received.Load(),
		Inserted:    in.inserted.Load(),
		Duplicates:  in.duplicates.Load(),
		Rejected:    in.rejected.Load(),
		BacklogFull: in.backlogFull.Load(),
		StoreErrors: in.storeErrors.Load(),
		Paused:      in.paused.Load(),
	}
}

// Start binds to the consumer topology.ConsumerReplayIngest (EnsureReplay
// creates it) and starts ingesting in the background. Cancelling ctx stops
// ingest at once, like a Stop whose context has ended.
func (in *Ingest) Start(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.running {
		return ErrIngestRunning
	}
	cons, err := in.js.Consumer(ctx, topology.StreamDLQ, topology.ConsumerReplayIngest)
	if err != nil {
		return fmt.Errorf("replay: ingest: bind consumer %s on %s: %w", topology.ConsumerReplayIngest, topology.StreamDLQ, err)
	}
	ackWait := cons.CachedInfo().Config.AckWait
	if ackWait <= 0 {
		ackWait = topology.ReplayIngestAckWait
	}

	writeCtx, stopWrite := context.WithCancel(context.WithoutCancel(ctx))
	fetchCtx, stopFetch := context.WithCancel(writeCtx)
	// Cancelling the caller's context is a hard stop.
	stopOnCancel := context.AfterFunc(ctx, stopWrite)
	in.stopFetch, in.stopWrite = stopFetch, func() { stopOnCancel(); stopWrite() }
	in.done = make(chan struct{})
	in.running = true

	// Unbuffered: the fetcher hands a batch over only when a writer is free,
	// so every batch held is one this worker refreshes while PostgreSQL is
	// down.
	work := make(chan *ingestBatch)
	in.refresh = ackWait / 3
	var writers sync.WaitGroup
	for range in.cfg.Writers {
		writers.Go(func() {
			for b := range work {
				in.write(writeCtx, b)
			}
		})
	}
	go func() {
		in.fetch(fetchCtx, writeCtx, cons, work)
		close(work)
		writers.Wait()
		stopWrite()
		close(in.done)
	}()
	return nil
}

// Stop stops fetching and waits until the batches held have been inserted
// and acked. When ctx ends first, the batches still held are handed back
// (NAK) for immediate redelivery to another replay-worker. Stop of an Ingest
// that is not running returns nil.
func (in *Ingest) Stop(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.running {
		return nil
	}
	in.running = false
	in.stopFetch()
	select {
	case <-in.done:
		in.stopWrite()
		return nil
	case <-ctx.Done():
	}
	in.stopWrite()
	<-in.done
	return nil
}

// ingestBatch is a batch of decoded dead letters and their messages, in the
// same order.
type ingestBatch struct {
	msgs    []jetstream.Msg
	entries []domain.DLQEntry
	// spans are the ingest spans of traced messages (nil for the others),
	// parallel to msgs; empty when no message of the batch is traced.
	spans []trace.Span
	// bounded says that the entries left are within their services' bound
	// (Ingest.bound ran).
	bounded bool
}

// keep leaves in b the messages, entries and spans i for which keep[i] (the
// spans of the others must have been ended).
func (b *ingestBatch) keep(keep []bool) {
	var spans []trace.Span
	n := 0
	for i := range b.msgs {
		if !keep[i] {
			continue
		}
		if i < len(b.spans) && b.spans[i] != nil {
			for len(spans) < n {
				spans = append(spans, nil)
			}
			spans = append(spans, b.spans[i])
		}
		b.msgs[n], b.entries[n] = b.msgs[i], b.entries[i]
		n++
	}
	clear(b.msgs[n:])
	clear(b.entries[n:])
	b.msgs, b.entries, b.spans = b.msgs[:n], b.entries[:n], spans
}

// fetch fetches batches until fetchCtx ends and hands them to the writers.
func (in *Ingest) fetch(fetchCtx, writeCtx context.Context, cons jetstream.Consumer, work chan<- *ingestBatch) {
	backoff := in.cfg.MinBackoff
	for fetchCtx.Err() == nil {
		mb, err := cons.Fetch(in.cfg.Batch, jetstream.FetchMaxWait(in.cfg.MaxWait))
		if err != nil {
			in.log.LogAttrs(fetchCtx, slog.LevelWarn, "fetch dead letters failed", slog.Any("error", err), slog.Duration("retry_in", backoff))
			if !sleepCtx(fetchCtx, backoff) {
				return
			}
			backoff = min(2*backoff, in.cfg.MaxBackoff)
			continue
		}
		backoff = in.cfg.MinBackoff
		b := &ingestBatch{}
		for msg := range mb.Messages() {
			in.received.Add(1)
			in.decode(writeCtx, msg, b)
		}
		if err := mb.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			in.log.LogAttrs(fetchCtx, slog.LevelDebug, "fetch ended early", slog.Any("error", err))
		}
		if len(b.msgs) == 0 {
			continue
		}
		if !in.handOver(writeCtx, work, b) {
			return
		}
	}
}

// handOver passes b to a free writer, keeping its messages ours while every
// writer is busy. It returns false when writeCtx ended, after handing b back.
func (in *Ingest) handOver(writeCtx context.Context, work chan<- *ingestBatch, b *ingestBatch) bool {
	t := time.NewTicker(in.refresh)
	defer t.Stop()
	for {
		select {
		case work <- b:
			return true
		case <-t.C:
			inProgress(b.msgs)
		case <-writeCtx.Done():
			endSpans(b.spans, writeCtx.Err())
			nakAll(b.msgs)
			return false
		}
	}
}

// decode adds msg's entry to b, or rejects msg.
func (in *Ingest) decode(ctx context.Context, msg jetstream.Msg, b *ingestBatch) {
	m, err := events.Decode(msg.Subject(), msg.Headers(), msg.Data())
	if err != nil {
		in.reject(ctx, msg, err)
		return
	}
	dl, ok := m.Payload.(events.DeadLetter)
	if !ok {
		in.reject(ctx, msg, fmt.Errorf("%w: %q carries a %T, not a dead letter", events.ErrInvalidSubject, msg.Subject(), m.Payload))
		return
	}
	b.msgs = append(b.msgs, msg)
	b.entries = append(b.entries, in.entry(m, dl))
	if span := startIngestSpan(msg.Subject(), msg.Headers(), m.Subject.Service, m.Envelope.ID); span != nil {
		if len(b.spans) < len(b.msgs)-1 {
			b.spans = append(b.spans, make([]trace.Span, len(b.msgs)-1-len(b.spans))...)
		}
		b.spans = append(b.spans, span)
	}
}

// entry converts a decoded dead letter to a new entry. It is created at its
// ce-time when that is in the past and within the retention, so that replay
// order (oldest first) follows when the operations failed; otherwise at the
// time of ingest. The store sets the expiry from its retention.
func (in *Ingest) entry(m events.Message, dl events.DeadLetter) domain.DLQEntry {
	now := in.now()
	at := now
	if t := m.Envelope.Time; !t.IsZero() && !t.After(now) && now.Sub(t) < domain.DefaultRetention {
		at = t
	}
	e := dl.Entry(m.Envelope.ID, m.Subject.Service, at)
	e.ExpiresAt = time.Time{}
	e.UpdatedAt = time.Time{}
	return e
}

// rejectNamespace derives the ids of rejected events from the stream
// sequence of the refused message, so that a rejection published twice (the
// worker died before the Term) is dropped as a duplicate by BALDUR_EVENTS.
var rejectNamespace = uuid.MustParse("0b6f3c1e-8f5a-4c2d-9e71-5a4d3b2c1f80")

// reject publishes the Rejected event of msg, then terminates msg. If the
// event cannot be published, msg is handed back for a later redelivery
// instead: a malformed dead letter is never dropped silently.
func (in *Ingest) reject(ctx context.Context, msg jetstream.Msg, cause error) {
	out, r, err := in.rejectedMsg(msg, events.ErrorCode(cause), cause)
	log := in.log.With(slog.String("subject", r.Subject), slog.String("ce_id", r.CEID), slog.String("code", r.Code))
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, in.cfg.InsertTimeout)
		_, err = in.js.PublishMsg(pctx, out)
		cancel()
	}
	if err != nil {
		log.LogAttrs(ctx, slog.LevelWarn, "publish rejected dead letter failed; will retry on redelivery", slog.Any("error", err))
		_ = msg.NakWithDelay(in.cfg.MaxBackoff)
		return
	}
	countRejected(ctx, r.Kind)
	if err := msg.TermWithReason(r.Code + ": " + r.Reason); err != nil {
		log.LogAttrs(ctx, slog.LevelWarn, "terminate rejected dead letter failed", slog.Any("error", err))
	}
	in.rejected.Add(1)
	log.LogAttrs(ctx, slog.LevelInfo, "rejected dead letter", slog.String("reason", r.Reason))
}

// rejectedMsg returns the rejected event of msg with code and its message
// for BALDUR_EVENTS.
func (in *Ingest) rejectedMsg(msg jetstream.Msg, code string, cause error) (*nats.Msg, events.Rejected, error) {
	now := in.now()
	r := events.NewRejected(msg.Subject(), msg.Headers(), len(msg.Data()), cause, now)
	r.Code = code
	id := uuid.NewSHA1(rejectNamespace, []byte(msg.Subject()+"\x00"+r.CEID+"\x00"+streamSeq(msg)))
	subj, err := events.RejectedSubject(r.Kind)
	if err != nil {
		return nil, r, err
	}
	out, err := events.NewMsg(subj, events.NewEnvelope(events.TypeRejected, id, in.nodeID, now), r)
	return out, r, err
}

// refusal is a dead letter refused at the bound, and why.
type refusal struct {
	msg   jetstream.Msg
	cause error
}

// refuseChunk bounds the rejected events refuseBacklog has in flight at once.
const refuseChunk = 256

// refuseBacklog publishes the rejected events (code CodeBacklogFull) of
// refused, asynchronously so that a service flooding at its bound costs one
// round trip per chunk rather than per dead letter, then terminates each
// dead letter whose event was stored. A dead letter whose event could not be
// published is handed back for a later redelivery, never dropped silently.
func (in *Ingest) refuseBacklog(ctx context.Context, refused []refusal) {
	ctx, cancel := context.WithTimeout(ctx, in.cfg.InsertTimeout)
	defer cancel()
	for start := 0; start < len(refused); start += refuseChunk {
		chunk := refused[start:min(start+refuseChunk, len(refused))]
		futures := make([]jetstream.PubAckFuture, len(chunk))
		rs := make([]events.Rejected, len(chunk))
		errs := make([]error, len(chunk))
		for i, f := range chunk {
			var out *nats.Msg
			out, rs[i], errs[i] = in.rejectedMsg(f.msg, CodeBacklogFull, f.cause)
			if errs[i] == nil {
				futures[i], errs[i] = in.js.PublishMsgAsync(out)
			}
		}
		for i, f := range chunk {
			if errs[i] == nil {
				select {
				case <-futures[i].Ok():
				case errs[i] = <-futures[i].Err():
				case <-ctx.Done():
					errs[i] = ctx.Err()
				}
			}
			if errs[i] != nil {
				in.log.LogAttrs(ctx, slog.LevelWarn, "publish rejected dead letter failed; will retry on redelivery",
					slog.String("subject", rs[i].Subject), slog.String("ce_id", rs[i].CEID), slog.String("code", CodeBacklogFull),
					slog.Any("error", errs[i]))
				_ = f.msg.NakWithDelay(in.cfg.MaxBackoff)
				continue
			}
			countRejected(ctx, rs[i].Kind)
			in.backlogFull.Add(1)
			if err := f.msg.TermWithReason(CodeBacklogFull + ": " + rs[i].Reason); err != nil {
				in.log.LogAttrs(ctx, slog.LevelWarn, "terminate rejected dead letter failed",
					slog.String("subject", rs[i].Subject), slog.String("ce_id", rs[i].CEID), slog.Any("error", err))
			}
		}
	}
}

// bound applies IngestConfig.MaxPendingPerService to b. It keeps in b, in
// stream order, the entries their services have room for; of the others it
// acks those already stored (a redelivery: duplicates) and refuses the rest
// (refuseBacklog). It returns the store's error, leaving b as it was, when
// the counts or the lookup fail.
func (in *Ingest) bound(ctx context.Context, b *ingestBatch) error {
	limit := in.cfg.MaxPendingPerService
	if limit == UnboundedPending {
		b.bounded = true
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, in.cfg.InsertTimeout)
	defer cancel()
	want := make(map[string]int64)
	var svcs []string
	for _, e := range b.entries {
		if want[e.Service] == 0 {
			svcs = append(svcs, e.Service)
		}
		want[e.Service]++
	}
	counts, err := in.store.LiveCounts(sctx, svcs)
	if err != nil {
		return fmt.Errorf("read live counts: %w", err)
	}
	now := in.now()
	var recount []string
	for _, svc := range svcs {
		c, ok := counts[svc]
		age := now.Sub(c.RecountedAt)
		if !ok || c.RecountedAt.IsZero() || age >= MaxPendingRecountAge ||
			(c.Live+want[svc] > limit && age >= in.cfg.PendingRecount) {
			recount = append(recount, svc)
		}
	}
	if len(recount) > 0 {
		exact, err := in.store.RecountLive(sctx, recount, now)
		if err != nil {
			return fmt.Errorf("recount live entries: %w", err)
		}
		for _, svc := range recount {
			counts[svc] = store.LiveCount{Live: exact[svc], RecountedAt: now}
		}
	}

	// live is each service's count with the entries of b kept so far.
	live := make(map[string]int64, len(svcs))
	for _, svc := range svcs {
		live[svc] = counts[svc].Live
	}
	keep := make([]bool, len(b.entries))
	var over []domain.DLQEntry
	for i, e := range b.entries {
		if live[e.Service] < limit {
			live[e.Service]++
			keep[i] = true
			continue
		}
		over = append(over, e)
	}
	if len(over) == 0 {
		b.bounded = true
		return nil
	}
	stored, err := in.store.StoredEntries(sctx, over)
	if err != nil {
		return fmt.Errorf("look up refused dead letters: %w", err)
	}
	dup := make(map[string]bool, len(stored))
	for _, id := range stored {
		dup[id] = true
	}

	var refused []refusal
	perService := map[string]int{}
	for i, e := range b.entries {
		if keep[i] {
			continue
		}
		var span trace.Span
		if i < len(b.spans) {
			span = b.spans[i]
		}
		if dup[e.ID] {
			endSpans([]trace.Span{span}, nil)
			in.duplicates.Add(1)
			_ = b.msgs[i].Ack()
			continue
		}
		cause := fmt.Errorf("%w: service %q has %d live dead letters in PostgreSQL, at its bound (--%s=%d, $%s): "+
			"this one was not stored; replay, resolve or discard the service's entries, or raise the bound",
			ErrBacklogFull, e.Service, live[e.Service], FlagMaxPendingPerService, limit, EnvMaxPendingPerService)
		endSpans([]trace.Span{span}, cause)
		refused = append(refused, refusal{msg: b.msgs[i], cause: cause})
		perService[e.Service]++
	}
	b.keep(keep)
	b.bounded = true
	for _, svc := range svcs {
		if n := perService[svc]; n > 0 {
			in.logRefused(ctx, svc, n, live[svc], limit, now)
		}
	}
	in.refuseBacklog(ctx, refused)
	return nil
}

// logRefused logs that n dead letters of svc were refused at the bound: at
// once for the first, then at most every refusedLogEvery per service, with
// the number refused since the last line.
func (in *Ingest) logRefused(ctx context.Context, svc string, n int, live, limit int64, now time.Time) {
	in.refusedMu.Lock()
	if in.refusedLog == nil {
		in.refusedLog = make(map[string]refusedLine)
	}
	l := in.refusedLog[svc]
	l.n += n
	due := l.at.IsZero() || now.Sub(l.at) >= refusedLogEvery
	if due {
		n, l = l.n, refusedLine{at: now}
	}
	in.refusedLog[svc] = l
	in.refusedMu.Unlock()
	if due {
		in.log.LogAttrs(ctx, slog.LevelWarn, "dead letters refused: the service is at its bound of live entries in PostgreSQL",
			slog.String("service", svc), slog.Int64("live", live), slog.Int64("bound", limit),
			slog.Int("refused", n), slog.String("code", CodeBacklogFull))
	}
}

// splitAfter is how many times in a row write tries a batch that fails with
// an error that is not an entry's fault before it splits the batch, so that
// an entry failing in a way nobody foresaw holds back no other.
const splitAfter = 3

// write inserts b and acks its messages, retrying with backoff while the
// store fails. An entry the store refuses is rejected alone (writeEach). A
// batch that keeps failing is split into its entries after splitAfter
// attempts; an entry that keeps failing alone is handed back to JetStream
// for a later redelivery, which frees the writer for other work. When ctx
// ends first, it hands the messages back.
func (in *Ingest) write(ctx context.Context, b *ingestBatch) {
	backoff := in.cfg.MinBackoff
	lastRefresh := time.Now()
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			endSpans(b.spans, ctx.Err())
			nakAll(b.msgs)
			return
		}
		var err error
		if !b.bounded {
			err = in.bound(ctx, b)
		}
		if err == nil && len(b.msgs) == 0 {
			return // every dead letter of the batch was refused or a duplicate
		}
		var res store.InsertResult
		if err == nil {
			ictx, cancel := context.WithTimeout(ctx, in.cfg.InsertTimeout)
			res, err = in.store.InsertEntries(ictx, b.entries)
			cancel()
			if err == nil {
				in.keepTraces(ctx, b, res)
				in.commit(b.msgs, res)
				return
			}
		}
		if errors.Is(err, store.ErrInvalidEntry) {
			// Decode accepted what the store refuses: find the culprits one
			// by one rather than holding the whole batch back.
			in.writeEach(ctx, b)
			return
		}
		if ctx.Err() != nil {
			endSpans(b.spans, ctx.Err())
			nakAll(b.msgs)
			return
		}
		in.storeErrors.Add(1)
		if !in.paused.Swap(true) {
			in.log.LogAttrs(ctx, slog.LevelWarn, "insert dead letters failed; ingest paused, retrying",
				slog.Int("batch", len(b.msgs)), slog.Any("error", err))
		}
		if attempt >= splitAfter {
			if len(b.msgs) > 1 {
				in.writeEach(ctx, b)
				return
			}
			in.log.LogAttrs(ctx, slog.LevelWarn, "insert dead letter keeps failing; handed back for a later redelivery",
				slog.String("ce_id", b.entries[0].ID), slog.Any("error", err))
			endSpans(b.spans, err)
			for _, m := range b.msgs {
				_ = m.NakWithDelay(in.cfg.MaxBackoff)
			}
			return
		}
		if time.Since(lastRefresh) >= in.refresh {
			inProgress(b.msgs)
			lastRefresh = time.Now()
		}
		if !sleepCtx(ctx, backoff) {
			endSpans(b.spans, ctx.Err())
			nakAll(b.msgs)
			return
		}
		backoff = min(2*backoff, in.cfg.MaxBackoff)
	}
}

// writeEach inserts b's entries one at a time, rejecting those the store
// refuses as invalid; it goes back to write for an entry that fails
// otherwise, and for every entry when b was not bounded yet.
func (in *Ingest) writeEach(ctx context.Context, b *ingestBatch) {
	for i, e := range b.entries {
		one := &ingestBatch{msgs: b.msgs[i : i+1], entries: []domain.DLQEntry{e}, bounded: b.bounded}
		if i < len(b.spans) {
			one.spans = b.spans[i : i+1]
		}
		if !one.bounded {
			// The bound could not be read for the batch: each entry is
			// bounded on its own, or handed back.
			in.write(ctx, one)
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, in.cfg.InsertTimeout)
		res, err := in.store.InsertEntries(ictx, one.entries)
		cancel()
		switch {
		case err == nil:
			in.keepTraces(ctx, one, res)
			in.commit(one.msgs, res)
		case errors.Is(err, store.ErrInvalidEntry):
			endSpans(one.spans, err)
			in.reject(ctx, one.msgs[0], fmt.Errorf("%w: %w", events.ErrInvalidValue, err))
		default:
			in.write(ctx, one)
		}
	}
}

// keepTraces stores the trace context of b's inserted entries, when the
// store keeps them, and ends b's ingest spans. A failure is logged: it costs
// the traces their continuation, never the dead letters.
func (in *Ingest) keepTraces(ctx context.Context, b *ingestBatch, res store.InsertResult) {
	if len(b.spans) == 0 {
		return
	}
	var err error
	if ts, ok := in.store.(TraceStore); ok {
		if tps := traceParents(b, res.Inserted); len(tps) > 0 {
			ictx, cancel := context.WithTimeout(ctx, in.cfg.InsertTimeout)
			err = ts.SetTraceContexts(ictx, tps)
			cancel()
			if err != nil {
				in.log.LogAttrs(ctx, slog.LevelDebug, "trace contexts not stored", slog.Any("error", err))
			}
		}
	}
	endSpans(b.spans, err)
}

// commit acks msgs, whose entries are committed, and counts res.
func (in *Ingest) commit(msgs []jetstream.Msg, res store.InsertResult) {
	if in.paused.Swap(false) {
		in.log.LogAttrs(context.Background(), slog.LevelInfo, "insert dead letters succeeded; ingest resumed")
	}
	in.inserted.Add(uint64(len(res.Inserted)))
	in.duplicates.Add(uint64(len(res.Duplicates)))
	for _, m := range msgs {
		// A lost ack means a redelivery, which the insert skips as a
		// duplicate: nothing to retry here.
		_ = m.Ack()
	}
}

func nakAll(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.Nak()
	}
}

func inProgress(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.InProgress()
	}
}

func streamSeq(msg jetstream.Msg) string {
	md, err := msg.Metadata()
	if err != nil {
		return ""
	}
	return strconv.FormatUint(md.Sequence.Stream, 10)
}

// sleepCtx waits d, and reports false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
