package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/topology"
)

// BreakerSummary is one row of the breaker grid (GET /api/breakers and the
// SSE "breaker" event): what an operator scans for, taken from the breaker's
// state in baldur_breakers.
type BreakerSummary struct {
	Service string       `json:"service"`
	State   domain.State `json:"state"`
	Mode    domain.Mode  `json:"mode"`
	// FailureRate is the window's failure rate in percent.
	FailureRate float64 `json:"failure_rate"`
	// Calls is the number of calls in the window; Failures of them failed.
	Calls    int64 `json:"calls"`
	Failures int64 `json:"failures"`
	// Generation is the breaker's generation.
	Generation uint64 `json:"generation"`
	// Since is when the breaker entered its state (its last transition);
	// absent for a breaker that never moved.
	Since time.Time `json:"since,omitzero"`
	// RecoveryAt is when an OPEN breaker may probe.
	RecoveryAt time.Time `json:"recovery_at,omitzero"`
	// Manual is the operator behind a non-auto mode.
	Manual *domain.Manual `json:"manual,omitempty"`
	// Override says whether a threshold override is recorded.
	Override bool `json:"override"`
	// LastCommandID is the id of the last command the breaker applied.
	LastCommandID string `json:"last_command_id,omitempty"`
}

func summarize(b domain.Breaker) BreakerSummary {
	s := BreakerSummary{
		Service: b.Service, State: b.State, Mode: b.Mode, FailureRate: b.Window.FailureRate,
		Calls: b.Window.Successes + b.Window.Failures, Failures: b.Window.Failures,
		Generation: b.Generation, RecoveryAt: b.RecoveryAt, Manual: b.Manual,
		Override: b.Override != nil, LastCommandID: b.LastCommandID,
	}
	if b.LastTransition != nil {
		s.Since = b.LastTransition.At
	}
	return s
}

// DLQDepth is the dead-letter queue's depth per service and status, as last
// polled, or the reason it could not be read.
type DLQDepth struct {
	Counts map[string]map[domain.DLQStatus]int64 `json:"counts"`
	// Error is why the last poll failed (no replay-worker answers, ...).
	Error string `json:"error,omitempty"`
	// At is when it was polled.
	At time.Time `json:"at"`
}

// RecentEvent is one message of BALDUR_EVENTS as the dashboard lists it.
type RecentEvent struct {
	Seq     uint64    `json:"seq"`
	Subject string    `json:"subject"`
	Type    string    `json:"type"`
	ID      string    `json:"id,omitempty"`
	Time    time.Time `json:"time,omitzero"`
	// Data is the event's JSON body; absent when it is larger than
	// maxEventData or not JSON.
	Data json.RawMessage `json:"data,omitempty"`
}

// maxEventData is the largest event body relayed to the dashboard.
const maxEventData = 8 << 10

// Snapshot is the first SSE message ("snapshot") and the whole picture the
// dashboard draws.
type Snapshot struct {
	Breakers   []BreakerSummary  `json:"breakers"`
	Governance domain.Governance `json:"governance"`
	DLQ        *DLQDepth         `json:"dlq,omitempty"`
	Events     []RecentEvent     `json:"events"`
	// Stale is set while the picture is not kept up to date (NATS
	// disconnected, or the feeds loading again after a reconnect).
	Stale *Staleness `json:"stale,omitempty"`
}

// sseMsg is one server-sent event, already encoded.
type sseMsg struct {
	name string
	data []byte
}

// subscriber is one SSE client. Its channel is closed when it falls behind
// (behind is then true) or when the server stops.
type subscriber struct {
	ch     chan sseMsg
	behind bool
}

// Why a live stream ended, as release counts it.
const (
	// endGone: the client went away or the server stopped; not a drop.
	endGone = iota
	// endBehind: the client fell subscriberBuffer messages behind.
	endBehind
	// endStalled: a write to the client did not complete within
	// Config.LiveWriteTimeout.
	endStalled
)

// subscriberBuffer is how many messages a slow SSE client may lag before it
// is dropped (its EventSource reconnects and gets a fresh snapshot).
const subscriberBuffer = 128

// live keeps the dashboard's picture of the fleet, fed by watches of the
// breaker and governance buckets, a tail of BALDUR_EVENTS and a DLQ poll, and
// fans every change out to the SSE subscribers.
type live struct {
	log *slog.Logger

	mu       sync.Mutex
	breakers map[string]domain.Breaker
	gov      domain.Governance
	dlq      *DLQDepth
	recent   []RecentEvent
	keep     int
	subs     map[*subscriber]struct{}
	closed   bool
	stale    *Staleness
	// streams counts the live streams whose handler runs, the ones
	// dropped from subs but still ending included: a slot is free only once
	// its handler returned.
	streams int
	// behind and stalled count the streams dropped for each reason.
	behind, stalled int64
}

func newLive(log *slog.Logger, keep int) *live {
	return &live{log: log, breakers: map[string]domain.Breaker{}, keep: keep, subs: map[*subscriber]struct{}{}}
}

// subscribe returns the current picture and subscribes to what follows,
// under one lock so that no change falls between them; ok is false when max
// streams run already. A subscription takes a slot until release.
func (l *live) subscribe(max int) (Snapshot, *subscriber, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.streams >= max {
		return Snapshot{}, nil, false
	}
	l.streams++
	s := &subscriber{ch: make(chan sseMsg, subscriberBuffer)}
	if l.closed {
		close(s.ch)
	} else {
		l.subs[s] = struct{}{}
	}
	return l.snapshotLocked(), s, true
}

// clients returns the number of live streams whose handler runs.
func (l *live) clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.streams
}

// dropped returns the number of streams dropped because the client fell
// behind, and because a write to it stalled.
func (l *live) dropped() (behind, stalled int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.behind, l.stalled
}

// release ends s, which ended for why (endGone, endBehind, endStalled),
// and frees its slot.
func (l *live) release(s *subscriber, why int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.subs[s]; ok {
		delete(l.subs, s)
		close(s.ch)
	}
	l.streams--
	switch why {
	case endBehind:
		l.behind++
	case endStalled:
		l.stalled++
	}
}

// closeAll ends every subscription, now and to come.
func (l *live) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for s := range l.subs {
		delete(l.subs, s)
		close(s.ch)
	}
}

func (l *live) snapshot() Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.snapshotLocked()
}

func (l *live) snapshotLocked() Snapshot {
	s := Snapshot{Breakers: make([]BreakerSummary, 0, len(l.breakers)), Governance: l.gov,
		Events: slices.Clone(l.recent)}
	for _, svc := range slices.Sorted(maps.Keys(l.breakers)) {
		s.Breakers = append(s.Breakers, summarize(l.breakers[svc]))
	}
	if l.dlq != nil {
		d := *l.dlq
		s.DLQ = &d
	}
	if s.Events == nil {
		s.Events = []RecentEvent{}
	}
	if l.stale != nil {
		st := *l.stale
		s.Stale = &st
	}
	return s
}

// markStale records that the picture is stale since at (kept when it
// already is) for reason, and tells the live dashboards.
func (l *live) markStale(at time.Time, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stale == nil {
		l.stale = &Staleness{Since: at.UTC()}
	}
	l.stale.Reason = reason
	l.broadcastLocked("stale", *l.stale)
}

// staleness returns the staleness, nil while the picture is up to date.
func (l *live) staleness() *Staleness {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stale == nil {
		return nil
	}
	st := *l.stale
	return &st
}

// markFresh records that the feeds are loaded again and ends every live
// stream: each dashboard reconnects (EventSource does) and gets the fresh
// snapshot instead of patching a picture of another fleet.
func (l *live) markFresh() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stale = nil
	for s := range l.subs {
		delete(l.subs, s)
		close(s.ch)
	}
}

// forget drops what the feeds loaded (breakers, governance, recent events),
// before they load it again; the DLQ depth is kept until the next poll.
func (l *live) forget() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.breakers = map[string]domain.Breaker{}
	l.gov = domain.Governance{}
	l.recent = nil
}

// breaker returns the last state seen of svc.
func (l *live) breaker(svc string) (domain.Breaker, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.breakers[svc]
	return b, ok
}

func (l *live) governance() domain.Governance {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gov
}

// broadcastLocked sends one event to every subscriber, dropping those that
// fell behind.
func (l *live) broadcastLocked(name string, v any) {
	if len(l.subs) == 0 {
		return
	}
	data, err := json.Marshal(v)
	if err != nil {
		l.log.Error("admin: encode event", slog.String("event", name), slog.Any("error", err))
		return
	}
	m := sseMsg{name: name, data: data}
	for s := range l.subs {
		select {
		case s.ch <- m:
		default:
			delete(l.subs, s)
			s.behind = true
			close(s.ch)
		}
	}
}

// applyBreaker applies one entry of baldur_breakers.
func (l *live) applyBreaker(e jetstream.KeyValueEntry) {
	svc := e.Key()
	if e.Operation() != jetstream.KeyValuePut {
		l.mu.Lock()
		delete(l.breakers, svc)
		l.broadcastLocked("breaker_removed", map[string]string{"service": svc})
		l.mu.Unlock()
		return
	}
	b, err := breaker.DecodeState(svc, e.Value())
	if err != nil {
		l.log.Warn("admin: undecodable breaker state skipped", slog.String("service", svc), slog.Any("error", err))
		return
	}
	if b.Service == "" {
		b.Service = svc
	}
	l.mu.Lock()
	l.breakers[svc] = b
	l.broadcastLocked("breaker", summarize(b))
	l.mu.Unlock()
}

// applyGovernance applies one entry of baldur_governance; keys other than
// kill_switch, emergency_level and error_budget are skipped.
func (l *live) applyGovernance(e jetstream.KeyValueEntry) {
	var value []byte
	if e.Operation() == jetstream.KeyValuePut {
		value = e.Value()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	g, known, err := l.gov.WithKey(e.Key(), value)
	switch {
	case !known:
		return
	case err != nil:
		l.log.Warn("admin: undecodable governance value skipped", slog.String("key", e.Key()), slog.Any("error", err))
		return
	}
	l.gov = g
	l.broadcastLocked("governance", g)
}

// setDLQ records a DLQ poll; it broadcasts only a change.
func (l *live) setDLQ(d DLQDepth) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dlq != nil && l.dlq.Error == d.Error && equalCounts(l.dlq.Counts, d.Counts) {
		l.dlq.At = d.At
		return
	}
	l.dlq = &d
	l.broadcastLocked("dlq", d)
}

func equalCounts(a, b map[string]map[domain.DLQStatus]int64) bool {
	return maps.EqualFunc(a, b, func(x, y map[domain.DLQStatus]int64) bool { return maps.Equal(x, y) })
}

// addEvent appends one message of BALDUR_EVENTS to the recent list.
func (l *live) addEvent(ev RecentEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recent = append(l.recent, ev)
	if over := len(l.recent) - l.keep; over > 0 {
		l.recent = slices.Delete(l.recent, 0, over)
	}
	l.broadcastLocked("event", ev)
}

// recentEvent converts a message of BALDUR_EVENTS.
func recentEvent(m jetstream.Msg) RecentEvent {
	ev := RecentEvent{Subject: m.Subject()}
	if md, err := m.Metadata(); err == nil {
		ev.Seq = md.Sequence.Stream
		ev.Time = md.Timestamp.UTC()
	}
	if env, err := events.ParseEnvelope(m.Headers()); err == nil {
		ev.Type, ev.ID = string(env.Type), env.ID
		if !env.Time.IsZero() {
			ev.Time = env.Time.UTC()
		}
	} else {
		ev.Type = m.Headers().Get("ce-type")
	}
	if d := m.Data(); len(d) <= maxEventData && json.Valid(d) {
		ev.Data = json.RawMessage(slices.Clone(d))
	}
	return ev
}

// watchBucket applies every entry of the bucket until life ends, returning
// once the initial values are in, or with the error that prevented it (ctx
// bounds that wait).
func watchBucket(ctx, life context.Context, kv jetstream.KeyValue, apply func(jetstream.KeyValueEntry), wg *sync.WaitGroup) error {
	w, err := kv.WatchAll(life)
	if err != nil {
		return err
	}
	ready := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { _ = w.Stop() }()
		loaded := false
		for {
			select {
			case <-life.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					if !loaded {
						close(ready)
					}
					return
				}
				if e == nil {
					if !loaded {
						loaded = true
						close(ready)
					}
					continue
				}
				apply(e)
			}
		}
	}()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tailEvents follows BALDUR_EVENTS from its last keep messages on.
func tailEvents(ctx context.Context, js jetstream.JetStream, keep int, add func(RecentEvent)) (jetstream.ConsumeContext, error) {
	st, err := js.Stream(ctx, topology.StreamEvents)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}
	if last := info.State.LastSeq; last > 0 {
		start := uint64(1)
		if last > uint64(keep) {
			start = last - uint64(keep) + 1
		}
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	c, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c.Consume(func(m jetstream.Msg) { add(recentEvent(m)) })
}

// dlqStatsFunc reads the DLQ's counts.
type dlqStatsFunc func(ctx context.Context) (replay.DLQStatsReply, error)

// pollDLQ reads the DLQ depth now and then every interval until ctx ends.
func pollDLQ(ctx context.Context, every time.Duration, now func() time.Time, stats dlqStatsFunc, set func(DLQDepth)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, every)
		r, err := stats(rctx)
		cancel()
		d := DLQDepth{Counts: r.Counts, At: now()}
		if d.Counts == nil {
			d.Counts = map[string]map[domain.DLQStatus]int64{}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.Error = err.Error()
		}
		set(d)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
