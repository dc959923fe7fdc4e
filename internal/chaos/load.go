//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur"
	"github.com/baldurfleet/baldur/internal/events"
)

// ErrNotAcked reports messages JetStream never acknowledged within the
// caller's context, despite retries.
var ErrNotAcked = errors.New("chaos: messages not acknowledged")

// Outcomes are report totals of one service.
type Outcomes struct {
	// Successes and Failures count calls.
	Successes, Failures int64
}

// Report is one outcome report to publish.
type Report struct {
	// Service is the breaker the report is for.
	Service string
	// Successes and Failures are the report's counts (at least one call).
	Successes, Failures int64
}

// Reports publishes outcome reports straight to JetStream, as a service in
// any language would, and counts per service what JetStream acknowledged.
// A publish that fails or times out is sent again with the same message id,
// so that the stream stores it once whatever happened to the first try: the
// acknowledged totals are exactly what the breaker-workers must fold.
type Reports struct {
	h      *Harness
	js     jetstream.JetStream
	source string

	mu    sync.Mutex
	acked map[string]Outcomes
	msgs  atomic.Int64
}

// NewReports returns a report publisher on a connection of its own; source
// is the reporting node (ce-source).
func (h *Harness) NewReports(source string) *Reports {
	h.tb.Helper()
	// An ack lost with a node (the publish reached a server that went
	// away) must end in an error that Send retries, not in a future that
	// never resolves.
	js, err := jetstream.New(h.Connect(source), jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		h.tb.Fatalf("chaos: JetStream: %v", err)
	}
	return &Reports{h: h, js: js, source: source, acked: map[string]Outcomes{}}
}

// Send publishes reports and returns once every one is acknowledged, or
// with an error wrapping ErrNotAcked when ctx ends first.
func (r *Reports) Send(ctx context.Context, reports []Report) error {
	now := time.Now()
	msgs := make([]*nats.Msg, len(reports))
	for i, rep := range reports {
		body := events.OutcomeReport{Successes: rep.Successes, Failures: rep.Failures}
		if rep.Successes == 0 {
			body.TrailingFailures = rep.Failures
		}
		subj, err := events.OutcomeSubject(rep.Service)
		if err != nil {
			return err
		}
		m, err := events.NewMsg(subj, events.NewEnvelopeRandomID(events.TypeOutcome, r.source, now), body)
		if err != nil {
			return err
		}
		msgs[i] = m
	}
	pending := make([]int, len(msgs))
	for i := range pending {
		pending[i] = i
	}
	for len(pending) > 0 {
		futures := make([]jetstream.PubAckFuture, len(pending))
		var failed []int
		for k, i := range pending {
			f, err := r.js.PublishMsgAsync(copyMsg(msgs[i]))
			if err != nil {
				failed = append(failed, i)
				continue
			}
			futures[k] = f
		}
		for k, f := range futures {
			if f == nil {
				continue
			}
			i := pending[k]
			select {
			case <-f.Ok():
				rep := reports[i]
				r.mu.Lock()
				o := r.acked[rep.Service]
				o.Successes += rep.Successes
				o.Failures += rep.Failures
				r.acked[rep.Service] = o
				r.mu.Unlock()
				r.msgs.Add(1)
			case <-f.Err():
				failed = append(failed, i)
			case <-ctx.Done():
				return fmt.Errorf("%w: %d of %d reports: %w", ErrNotAcked, len(pending)-k, len(reports), ctx.Err())
			}
		}
		if len(failed) > 0 {
			if err := pause(ctx, 50*time.Millisecond); err != nil {
				return fmt.Errorf("%w: %d of %d reports: %w", ErrNotAcked, len(failed), len(reports), err)
			}
		}
		pending = failed
	}
	return nil
}

// Acked returns the acknowledged totals of svc.
func (r *Reports) Acked(svc string) Outcomes {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.acked[svc]
}

// AckedAll returns the acknowledged totals of every service.
func (r *Reports) AckedAll() map[string]Outcomes {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Outcomes, len(r.acked))
	for k, v := range r.acked {
		out[k] = v
	}
	return out
}

// Messages counts the acknowledged reports.
func (r *Reports) Messages() int64 { return r.msgs.Load() }

func copyMsg(m *nats.Msg) *nats.Msg {
	return &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Command publishes a breaker command for svc on js and retries, with the
// same ce-id (so it is applied once), until JetStream acknowledges it. It
// returns the command's ce-id.
func (h *Harness) Command(ctx context.Context, js jetstream.JetStream, svc string, c events.BreakerCommand) (string, error) {
	subj, err := events.ControlSubject(svc)
	if err != nil {
		return "", err
	}
	env := events.NewEnvelopeRandomID(events.TypeControl, "chaos-operator", time.Now())
	msg, err := events.NewMsg(subj, env, c)
	if err != nil {
		return "", err
	}
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.PublishMsg(pctx, copyMsg(msg))
		cancel()
		if err == nil {
			return env.ID, nil
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return "", fmt.Errorf("%w: command %s for %s: %w", ErrNotAcked, c.Action, svc, err)
		}
	}
}

// DeadLetters submits dead letters through an SDK client and remembers the
// id of each acknowledged one.
type DeadLetters struct {
	h      *Harness
	client *baldur.Client

	mu    sync.Mutex
	acked map[string]string // id → service
	n     atomic.Int64
}

// NewDeadLetters returns a dead-letter submitter on an SDK client of its own.
func (h *Harness) NewDeadLetters(node string) *DeadLetters {
	d := &DeadLetters{h: h, client: h.Client(node), acked: map[string]string{}}
	h.lettersMu.Lock()
	h.letters = append(h.letters, d)
	h.lettersMu.Unlock()
	return d
}

// AckedDeadLetters returns the dead letters acknowledged so far by every
// submitter of the harness, id → service.
func (h *Harness) AckedDeadLetters() map[string]string {
	h.lettersMu.Lock()
	all := append([]*DeadLetters(nil), h.letters...)
	h.lettersMu.Unlock()
	out := map[string]string{}
	for _, d := range all {
		for id, svc := range d.Acked() {
			out[id] = svc
		}
	}
	return out
}

// Submit sends dead letter number i of svc (its id derived from the seed,
// svc and i) and retries with the same id until it is acknowledged. retries
// is its max_retries.
func (d *DeadLetters) Submit(ctx context.Context, svc string, i, retries int) (string, error) {
	id := uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "baldur-chaos/%d/%s/%s/%d", d.h.seed, d.h.name, svc, i)).String()
	op := baldur.FailedOperation{
		ID: id, Service: svc, Operation: "charge", IdempotencyKey: fmt.Sprintf("%s-%d", svc, i),
		FailureType: "PG_TIMEOUT", ErrorMessage: "chaos", Request: map[string]int{"n": i},
		MaxRetries: baldur.Retries(retries),
	}
	for {
		err := d.client.DeadLetter(ctx, op)
		if err == nil {
			d.mu.Lock()
			d.acked[id] = svc
			d.mu.Unlock()
			d.n.Add(1)
			return id, nil
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return "", fmt.Errorf("%w: dead letter %s of %s: %w", ErrNotAcked, id, svc, err)
		}
	}
}

// Acked returns the acknowledged dead letters, id → service.
func (d *DeadLetters) Acked() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]string, len(d.acked))
	for k, v := range d.acked {
		out[k] = v
	}
	return out
}

// Messages counts the acknowledged dead letters.
func (d *DeadLetters) Messages() int64 { return d.n.Load() }

// ReplaySink is a service's replay handler that checks, as it serves, that
// no entry is ever delivered twice at the same time, and records every
// delivery and success.
type ReplaySink struct {
	h    *Harness
	fail func(id string, attempt int) error

	mu         sync.Mutex
	inflight   map[string]bool
	deliveries map[string]int
	succeeded  map[string]int
	total      atomic.Int64
}

// NewReplaySink returns a sink whose handler returns fail(id, attempt) (nil:
// always succeed).
func (h *Harness) NewReplaySink(fail func(id string, attempt int) error) *ReplaySink {
	if fail == nil {
		fail = func(string, int) error { return nil }
	}
	return &ReplaySink{h: h, fail: fail, inflight: map[string]bool{}, deliveries: map[string]int{}, succeeded: map[string]int{}}
}

// Serve registers the sink as svc's replay handler on client.
func (s *ReplaySink) Serve(client *baldur.Client, svc string) {
	s.h.tb.Helper()
	stop, err := client.HandleReplay(svc, s.handle)
	if err != nil {
		s.h.tb.Fatalf("chaos: replay handler for %s: %v", svc, err)
	}
	s.h.tb.Cleanup(func() { _ = stop() })
}

func (s *ReplaySink) handle(_ context.Context, req baldur.ReplayRequest) error {
	s.mu.Lock()
	if s.inflight[req.DLQID] {
		s.mu.Unlock()
		s.h.Violation("entry %s of %s delivered twice concurrently (attempt %d)", req.DLQID, req.Service, req.Attempt)
		return errors.New("chaos: concurrent delivery")
	}
	s.inflight[req.DLQID] = true
	s.mu.Unlock()
	err := s.fail(req.DLQID, req.Attempt)
	s.mu.Lock()
	delete(s.inflight, req.DLQID)
	s.deliveries[req.DLQID]++
	if err == nil {
		s.succeeded[req.DLQID]++
	}
	s.mu.Unlock()
	s.total.Add(1)
	return err
}

// Succeeded returns how many deliveries of id succeeded.
func (s *ReplaySink) Succeeded(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.succeeded[id]
}

// Deliveries counts every delivery served.
func (s *ReplaySink) Deliveries() int64 { return s.total.Load() }
