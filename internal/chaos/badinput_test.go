//go:build chaos

package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/admin"
	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/topology"
)

// badMsg is one item of the bad-input corpus.
type badMsg struct {
	name    string
	subject string
	header  nats.Header
	data    []byte
}

// tenMB is the size of the largest bodies of the corpus.
const tenMB = 10 << 20

// pad returns a JSON object of at least n bytes.
func pad(n int) []byte { return []byte(`{"pad":"` + strings.Repeat("a", n) + `"}`) }

// inputCorpus returns the bad messages for one input subject family:
// prefix is the subject before the service name ("" for a fixed subject),
// subject the subject they go to, typ the contract type, valid a valid body
// and wrongType a body with a field of the wrong JSON type.
func inputCorpus(subject, prefix string, typ events.Type, valid, wrongType string, maxBody int) []badMsg {
	hdr := func(edit func(nats.Header)) nats.Header {
		h := events.NewEnvelopeRandomID(typ, "chaos-bad", time.Now()).Header()
		if edit != nil {
			edit(h)
		}
		return h
	}
	out := []badMsg{
		{"not JSON", subject, hdr(nil), []byte(`{"successes":`)},
		{"a JSON array", subject, hdr(nil), []byte(`[1,2,3]`)},
		{"JSON null", subject, hdr(nil), []byte(`null`)},
		{"wrong type", subject, hdr(nil), []byte(wrongType)},
		{"unknown field", subject, hdr(nil), []byte(`{"bogus":true}`)},
		{"invalid UTF-8", subject, hdr(nil), []byte("{\"actor\":\"\xff\xfe\"}")},
		{"oversize", subject, hdr(nil), pad(maxBody + 1)},
		{"10 MB body", subject, hdr(nil), pad(tenMB)},
		{"wrong type version", subject, hdr(func(h nats.Header) { h.Set(events.HeaderType, strings.TrimSuffix(string(typ), "v1")+"v2") }), []byte(valid)},
		{"wrong CloudEvents version", subject, hdr(func(h nats.Header) { h.Set(events.HeaderSpecVersion, "0.3") }), []byte(valid)},
		{"another kind's type", subject, hdr(func(h nats.Header) { h.Set(events.HeaderType, string(events.TypeReplay)) }), []byte(valid)},
		{"no headers", subject, nil, []byte(valid)},
		{"ce-id not a UUID", subject, hdr(func(h nats.Header) { h.Set(events.HeaderID, "../../etc/passwd") }), []byte(valid)},
		{"hostile ce-source", subject, hdr(func(h nats.Header) { h.Set(events.HeaderSource, "a\x00\x1b[31m"+strings.Repeat("x", 2000)) }), []byte(valid)},
		{"bad ce-time", subject, hdr(func(h nats.Header) { h.Set(events.HeaderTime, "yesterday") }), []byte(valid)},
	}
	if prefix != "" {
		for _, s := range []struct{ name, svc string }{
			{"too many tokens", "svc.extra"},
			{"name too long", strings.Repeat("n", 200)},
			{"control character in the name", "a\x01b"},
			{"upper case and symbols", "Pay$ments"},
			{"wildcard *", "*"},
			{"wildcard >", ">"},
			{"empty name", ""},
		} {
			out = append(out, badMsg{"subject: " + s.name, prefix + s.svc, hdr(nil), []byte(valid)})
		}
	}
	return out
}

// TestChaosBadInput is scenario 5: bad input on every way into the fleet,
// interleaved with good reports and dead letters, case by case (see
// badInputCases): a corpus of malformed, oversize, wrong-type,
// wrong-version and hostile messages (bad headers, names with wildcards
// and control characters, 10 MB bodies) on every subject — outcome
// reports, breaker and governance commands, dead letters, permit requests,
// replay deliveries, the DLQ endpoints —, a 1 MB message on every subject
// a stream of the fleet captures and on every request subject, every admin
// endpoint with bad bodies, the admin server under idle live dashboards,
// stalled connections, foreign hosts and reads without the token, and the
// DLQ stats at 20,000 services. Invariants: the fleet rejects each bad
// message with a reason (a rejected event per bad message JetStream stored
// or a worker was handed, an error answer per request; NATS itself refuses
// what it cannot carry, and no stream stores a 1 MB message), the admin
// keeps answering and sheds what it must, nothing crashes (every component
// still answers at the end), and no good message is lost: every good
// report is folded exactly once and every good dead letter is in
// PostgreSQL once, replayed or escalated.
func TestChaosBadInput(t *testing.T) {
	h := New(t, "bad-input", Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	b := &badInput{t: t, h: h, goodSvcs: names("good", 3), expected: map[events.RejectedKind]int{}, edge: map[string]int{},
		perCase: map[string]int{}}
	for _, svc := range b.goodSvcs {
		h.SetConfig(svc, countReplayConfig)
	}
	capped := func(c *breaker.Config) { c.MaxBreakers = badInputMaxBreakers }
	b.breakerWorkers = []*BreakerWorker{h.StartBreakerWorker("bw-1", capped), h.StartBreakerWorker("bw-2", capped)}
	h.StartReplayWorker("rw-1", ReplayOptions{Configure: func(c *replay.Config) { c.Ingest.MaxPendingPerService = badInputMaxPending }})
	b.sink = h.NewReplaySink(nil)
	service := h.Client("svc-handler")
	for _, svc := range b.goodSvcs {
		b.sink.Serve(service, svc)
	}
	b.reports = h.NewReports("svc-reporter")
	b.letters = h.NewDeadLetters("svc-dlq")
	var first []Report
	for _, svc := range b.goodSvcs {
		first = append(first, Report{Service: svc, Successes: 1})
	}
	if err := b.reports.Send(ctx, first); err != nil {
		t.Fatal(err)
	}
	b.nc = h.Connect("chaos-bad")
	var err error
	if b.js, err = jetstream.New(b.nc); err != nil {
		t.Fatal(err)
	}
	b.startAdmin(ctx)

	for _, c := range badInputCases() {
		b.current = c.name
		start := time.Now()
		c.run(b, ctx)
		t.Logf("chaos: bad-input case %q: %d bad inputs in %s", c.name, b.perCase[c.name], since(start))
	}
	b.current = "final checks"

	// Every stored bad message is rejected, exactly once, with a reason.
	var got map[events.RejectedKind]int
	if !h.Until(30*time.Second, 100*time.Millisecond, func() bool {
		got, err = rejectedEvents(ctx, h)
		if err != nil {
			return false
		}
		for k, n := range b.expected {
			if got[k] < n {
				return false
			}
		}
		return true
	}) {
		h.Violation("rejected events %v, want %v (err %v)", got, b.expected, err)
	}
	_ = pause(ctx, time.Second) // let a duplicate show, if any
	if got, err = rejectedEvents(ctx, h); err != nil {
		t.Fatal(err)
	}
	for k, n := range got {
		if n != b.expected[k] {
			h.Violation("%d rejected events of kind %s, %d bad messages of that kind stored", n, k, b.expected[k])
		}
	}
	// The forged replay delivery never reached the handler.
	b.sink.mu.Lock()
	for id := range b.sink.deliveries {
		if _, ok := b.letters.Acked()[id]; !ok {
			h.Violation("the replay handler was handed entry %s, which is no acknowledged dead letter", id)
		}
	}
	b.sink.mu.Unlock()

	// No crash: everything still answers, and the good messages all made it.
	settle(ctx, h, b.reports, b.goodSvcs, 60*time.Second)
	h.CheckFolded(ctx, b.reports.AckedAll())
	entries := h.CheckDeadLetters(ctx, b.letters.Acked(), b.sink, ReplayedOrEscalated)
	var stats struct {
		Counts map[string]map[domain.DLQStatus]int64 `json:"counts"`
	}
	if err := b.ops.DLQ(ctx, events.DLQOpStats, nil, &stats); err != nil {
		h.Violation("the DLQ endpoints no longer answer: %v", err)
	}
	if _, _, err := b.ops.Breaker(ctx, b.goodSvcs[0]); err != nil {
		h.Violation("the breaker state is no longer readable: %v", err)
	}
	if code, _, err := b.adminGet(ctx, "/api/health", nil); err != nil || code != http.StatusOK {
		h.Violation("admin health answered %d (%v) after the corpus", code, err)
	}
	var stored int
	for _, n := range b.expected {
		stored += n
	}
	t.Logf("chaos: %d bad messages stored or handed to a worker and rejected %v, %d kinds refused by NATS %v, %d requests answered with an error; bad inputs by case %v",
		stored, got, len(b.edge), b.edge, b.answered, b.perCase)
	h.Finish(Totals{Messages: b.reports.Messages() + b.letters.Messages() + int64(h.FaultsOf("bad-input")), Entries: entries})
}

// badInputCase is one case of the bad-input scenario. run sends its bad
// input and checks at once what it can (answers, refusals, the admin's
// behaviour); the rejected events its bad messages must give are added to
// badInput.expected and checked with every other case's at the end.
type badInputCase struct {
	name string
	run  func(b *badInput, ctx context.Context)
}

// badInputCases are the scenario's cases, in order. A new case is a method
// of badInput and a line here; it counts each bad input with b.bad (or
// b.store, b.refused, b.answer) and records a broken invariant with
// b.h.Violation.
func badInputCases() []badInputCase {
	return []badInputCase{
		{"stream subjects", (*badInput).streamCorpus},
		{"1 MB on every subject", (*badInput).oneMegabyte},
		{"permit requests", (*badInput).permitCorpus},
		{"replay deliveries", (*badInput).replayCorpus},
		{"DLQ endpoints", (*badInput).dlqCorpus},
		{"admin routes", (*badInput).adminRoutes},
		{"admin under idle and stalled clients", (*badInput).adminHardening},
		{"DLQ stats at 20k services", (*badInput).dlqStatsAtScale},
		{"audit log tampering", (*badInput).auditTampering},
		{"a flood of dead letters for one service", (*badInput).backlogBound},
		{"a flood of new breaker names", (*badInput).breakerCap},
	}
}

// badInput is what the bad-input scenario's cases share: the fleet, the
// attacker's own connection, the good traffic interleaved with the bad,
// the admin server, and what was counted.
type badInput struct {
	t        *testing.T
	h        *Harness
	nc       *nats.Conn // the attacker's connection
	js       jetstream.JetStream
	goodSvcs []string
	// breakerWorkers are the fleet's breaker-workers (capped at
	// badInputMaxBreakers).
	breakerWorkers []*BreakerWorker
	reports        *Reports
	letters        *DeadLetters
	sink           *ReplaySink

	// ops and admin are the operator client and the admin server the
	// admin cases use; admin listens on adminAddr and takes adminToken.
	ops       *opsclient.Client
	admin     *admin.Server
	adminAddr string

	goodIndex int
	current   string // the case running

	mu       sync.Mutex
	expected map[events.RejectedKind]int // bad messages stored or handed to a worker, by the kind of rejected event they must give
	edge     map[string]int              // refused by NATS before any worker, by reason
	answered int                         // requests answered with an error
	perCase  map[string]int              // bad inputs by case
}

// adminToken is the token of the scenario's admin server.
const adminToken = "chaos-token"

// bad counts one bad input of the current case (a fault of kind
// "bad-input") and logs detail.
func (b *badInput) bad(detail string) {
	b.mu.Lock()
	b.perCase[b.current]++
	b.mu.Unlock()
	b.h.Fault("bad-input", detail)
}

// good sends a good report and, every other time, a good dead letter: the
// scenario interleaves them with the bad input.
func (b *badInput) good(ctx context.Context) {
	svc := b.goodSvcs[b.goodIndex%len(b.goodSvcs)]
	if err := b.reports.Send(ctx, []Report{{Service: svc, Successes: 2, Failures: 1}}); err != nil {
		b.t.Fatal(err)
	}
	if b.goodIndex%2 == 0 {
		if _, err := b.letters.Submit(ctx, svc, b.goodIndex, 2); err != nil {
			b.t.Fatal(err)
		}
	}
	b.goodIndex++
}

// refused counts m as refused by NATS before any worker saw it, by reason.
func (b *badInput) refused(m badMsg, err error) {
	reason := err.Error()
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		reason = "maximum payload exceeded"
	case errors.Is(err, nats.ErrBadSubject):
		reason = "invalid subject"
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		reason = "no stream captures the subject"
	case errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum):
		reason = "the stream's maximum message size exceeded"
	}
	b.mu.Lock()
	b.edge[reason]++
	b.mu.Unlock()
	b.bad(fmt.Sprintf("%s on %q: refused by NATS: %s", m.name, clipString(m.subject, 40), reason))
}

// expect counts one bad message a worker must reject with an event of kind.
func (b *badInput) expect(kind events.RejectedKind, detail string) {
	b.mu.Lock()
	b.expected[kind]++
	b.mu.Unlock()
	b.bad(detail)
}

// answer counts one request answered with an error.
func (b *badInput) answer(detail string) {
	b.mu.Lock()
	b.answered++
	b.mu.Unlock()
	b.bad(detail)
}

// publish sends m to JetStream: it is either refused by NATS or stored,
// and then a worker must reject it.
func (b *badInput) publish(ctx context.Context, m badMsg) {
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := b.js.PublishMsg(pctx, &nats.Msg{Subject: m.subject, Header: m.header, Data: m.data}); err != nil {
		b.refused(m, err)
		return
	}
	kind := events.RejectedKindFor(m.subject)
	b.expect(kind, fmt.Sprintf("%s on %q: stored, to be rejected as %s", m.name, clipString(m.subject, 40), kind))
}

// streamCorpus: the corpus on the JetStream input subjects (reports,
// commands, governance, dead letters) and poison dead letters. Each bad
// message is either refused by NATS or stored, and then must be rejected
// by a worker.
func (b *badInput) streamCorpus(ctx context.Context) {
	validDL, err := json.Marshal(events.DeadLetter{Domain: domain.FailureDomain("infrastructure"), FailureType: "TIMEOUT", Operation: "charge",
		Request: json.RawMessage(`{"n":1}`)})
	if err != nil {
		b.t.Fatal(err)
	}
	var corpus []badMsg
	corpus = append(corpus, inputCorpus(events.MustOutcomeSubject("bad-svc"), "baldur.outcome.", events.TypeOutcome,
		`{"successes":1}`, `{"successes":"many"}`, events.MaxOutcomeBody)...)
	corpus = append(corpus, inputCorpus(events.MustControlSubject("bad-svc"), "baldur.control.", events.TypeControl,
		`{"action":"open","actor":"mallory","reason":"chaos"}`, `{"action":7,"actor":"a","reason":"r"}`, events.MaxCommandBody)...)
	corpus = append(corpus, inputCorpus(events.SubjectGovernance, "", events.TypeGovernance,
		`{"action":"kill_switch_on","actor":"mallory","reason":"chaos"}`, `{"action":["kill_switch_on"],"actor":"a","reason":"r"}`, events.MaxGovernanceBody)...)
	corpus = append(corpus, inputCorpus(events.MustDLQSubject("bad-svc"), "baldur.dlq.", events.TypeDLQ,
		string(validDL), `{"domain":"infrastructure","failure_type":"T","operation":42}`, events.MaxDeadLetterBody)...)
	// Poison: dead letters encoding/json takes and PostgreSQL refuses. One
	// of them once wedged the ingest of every service; each must be
	// rejected alone while the good dead letters around it are stored.
	poisonHdr := func() nats.Header {
		return events.NewEnvelopeRandomID(events.TypeDLQ, "chaos-bad", time.Now()).Header()
	}
	const poisonBase = `"domain":"infrastructure","failure_type":"T","operation":"charge"`
	for _, p := range []struct{ name, body string }{
		{"poison: \\u0000 in request", `{` + poisonBase + `,"request":{"note":"a\u0000b"}}`},
		{"poison: lone surrogate in metadata", `{` + poisonBase + `,"metadata":{"k":"\ud800"}}`},
		{"poison: lone low surrogate in request", `{` + poisonBase + `,"request":"\udfff"}`},
		{"poison: number beyond PostgreSQL numeric", `{` + poisonBase + `,"request":{"n":1e1000000}}`},
	} {
		corpus = append(corpus, badMsg{p.name, events.MustDLQSubject(b.goodSvcs[0]), poisonHdr(), []byte(p.body)})
	}
	for _, m := range corpus {
		b.publish(ctx, m)
		b.good(ctx)
	}
}

// permit sends one bad permit request (core request/reply to the
// breaker-workers): refused by NATS, or a worker must reject it with an
// event (it may not answer).
func (b *badInput) permit(name string, body []byte) {
	m := badMsg{name: name, subject: events.MustPermitSubject("bad-svc")}
	_, err := b.nc.Request(m.subject, body, 5*time.Second)
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		b.refused(m, err)
	case err != nil && !errors.Is(err, nats.ErrTimeout):
		b.t.Fatalf("chaos: bad permit request %s: %v", name, err)
	default:
		b.expect(events.RejectedPermit, "permit request: "+name)
	}
}

// permitCorpus: bad permit requests.
func (b *badInput) permitCorpus(ctx context.Context) {
	for _, p := range []struct{ name, body string }{
		{"not JSON", `{"node":`}, {"wrong type", `{"node":7}`}, {"unknown field", `{"bogus":1}`},
		{"oversize", string(pad(events.MaxPermitBody + 1))}, {"a JSON array", `[]`},
	} {
		b.permit(p.name, []byte(p.body))
		b.good(ctx)
	}
}

// replay sends one bad replay delivery to a good service's SDK handler: it
// must be answered with an error, never handed to the handler.
func (b *badInput) replay(ctx context.Context, m badMsg) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := b.nc.RequestMsgWithContext(rctx, &nats.Msg{Subject: m.subject, Header: m.header, Data: m.data})
	if err != nil {
		b.refused(m, err)
		return
	}
	var reply events.ReplayReply
	if jerr := json.Unmarshal(resp.Data, &reply); jerr != nil || reply.OK || reply.Error == "" {
		b.h.Violation("replay delivery %q: answered %q, want an error with a reason", m.name, resp.Data)
	}
	b.answer("replay delivery: " + m.name)
}

// replayCorpus: bad replay deliveries.
func (b *badInput) replayCorpus(ctx context.Context) {
	for _, m := range inputCorpus(events.MustReplaySubject(b.goodSvcs[0]), "", events.TypeReplay,
		`{"service":"good-0","dlq_id":"forged-1","attempt":1,"operation":"charge","request":{}}`,
		`{"service":"good-0","dlq_id":7,"attempt":"one"}`, events.MaxRequestSize+64<<10) {
		b.replay(ctx, m)
	}
}

// dlqRequest sends one bad request to a DLQ endpoint: refused by NATS or
// answered 400.
func (b *badInput) dlqRequest(subject, name string, body []byte) {
	m := badMsg{name: name, subject: subject}
	resp, err := b.nc.Request(subject, body, 10*time.Second)
	if err != nil {
		b.refused(m, err)
		return
	}
	if code := resp.Header.Get("Nats-Service-Error-Code"); code != "400" {
		b.h.Violation("%s with %s: answered code %q (%s), want 400", subject, name, code, clipString(string(resp.Data), 200))
	}
	b.answer(subject + ": " + name)
}

// dlqSubjects are the subjects of the DLQ endpoints that take a body (stats
// takes no field: a body with one is refused, checked with the others).
func (b *badInput) dlqSubjects() []string {
	var out []string
	for _, op := range events.DLQOps {
		if op == events.DLQOpStats {
			continue
		}
		subject, err := events.APIDLQSubject(op)
		if err != nil {
			b.t.Fatal(err)
		}
		out = append(out, subject)
	}
	return out
}

// dlqCorpus: every DLQ endpoint, each bad body answered 400.
func (b *badInput) dlqCorpus(context.Context) {
	bodies := []struct{ name, body string }{
		{"not JSON", `{`}, {"a JSON array", `[]`}, {"wrong type", `{"id":7,"limit":"ten"}`},
		{"unknown field", `{"bogus":1}`}, {"duplicate field", `{"id":"a","id":"b"}`},
		{"wildcard service", `{"service":"pay.*","id":"x"}`}, {"control characters", `{"id":"\u0000","actor":"a\u001b","reason":"r"}`},
		{"oversize", string(pad(70 << 10))}, {"10 MB body", string(pad(tenMB))},
	}
	for _, subject := range b.dlqSubjects() {
		for _, body := range bodies {
			b.dlqRequest(subject, body.name, []byte(body.body))
		}
	}
}

// oneMegabyte: a 1 MB message on every subject a stream of the fleet
// captures (the input, the dead letters, the events, the audit heads, and
// any stream added later; not the KV buckets, which only the workers
// write) and on every request subject (permits, replay deliveries, the DLQ
// endpoints), at two sizes: 1 MiB, which NATS's payload limit refuses at
// the publisher, and the largest message the connection carries, which
// reaches the server. On a stream subject that one must be refused by the
// stream's maximum message size: a message stored is a violation (the
// input keeps messages for a day). On a request subject it must be
// rejected like any bad request.
func (b *badInput) oneMegabyte(ctx context.Context) {
	maxPayload := int(b.nc.MaxPayload())
	hdr := events.NewEnvelopeRandomID(events.TypeOutcome, "chaos-bad", time.Now()).Header()
	hdrLen := 0
	for k, vs := range hdr {
		for _, v := range vs {
			hdrLen += len(k) + len(v) + 4
		}
	}
	sizes := []struct {
		name string
		n    int
	}{
		{"1 MiB", 1 << 20},
		// The header block's framing, a few dozen bytes, is left as slack.
		{fmt.Sprintf("%d bytes (max_payload %d less the headers)", maxPayload-hdrLen-256, maxPayload), maxPayload - hdrLen - 256},
	}
	b.t.Logf("chaos: max_payload %d bytes", maxPayload)

	var streams []string
	lister := b.h.JS.StreamNames(ctx)
	for name := range lister.Name() {
		if !strings.HasPrefix(name, "KV_") && !strings.HasPrefix(name, "OBJ_") {
			streams = append(streams, name)
		}
	}
	if err := lister.Err(); err != nil {
		b.t.Fatalf("chaos: list streams: %v", err)
	}
	slices.Sort(streams)
	for _, name := range streams {
		st, err := b.h.JS.Stream(ctx, name)
		if err != nil {
			b.t.Fatalf("chaos: stream %s: %v", name, err)
		}
		cfg := st.CachedInfo().Config
		for _, filter := range cfg.Subjects {
			subject := concreteSubject(filter, "chaos-1mb")
			for _, size := range sizes {
				m := badMsg{name: size.name + " (stream " + name + ")", subject: subject, header: hdr, data: pad(size.n)}
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				ack, err := b.js.PublishMsg(pctx, &nats.Msg{Subject: m.subject, Header: m.header, Data: m.data})
				cancel()
				switch {
				case err == nil:
					b.h.Violation("%s on %s: stored by %s at seq %d (max message size %d), kept for the stream's max age", size.name, subject, ack.Stream, ack.Sequence, cfg.MaxMsgSize)
				case errors.Is(err, nats.ErrMaxPayload), errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum):
					b.refused(m, err)
				default:
					b.h.Violation("%s on %s: refused with %v, want the payload limit or the stream's maximum message size", size.name, subject, err)
				}
			}
			b.good(ctx)
		}
	}

	// The request subjects.
	for _, size := range sizes {
		b.permit(size.name, pad(size.n))
		b.replay(ctx, badMsg{name: size.name, subject: events.MustReplaySubject(b.goodSvcs[0]),
			header: events.NewEnvelopeRandomID(events.TypeReplay, "chaos-bad", time.Now()).Header(), data: pad(size.n)})
		for _, subject := range b.dlqSubjects() {
			b.dlqRequest(subject, size.name, pad(size.n))
		}
		b.good(ctx)
	}
}

// concreteSubject returns a subject filter with each wildcard replaced by
// token.
func concreteSubject(filter, token string) string {
	tokens := strings.Split(filter, ".")
	for i, t := range tokens {
		if t == "*" || t == ">" {
			tokens[i] = token
		}
	}
	return strings.Join(tokens, ".")
}

// rejectedEvents counts the rejected events stored so far, by kind; each
// must name a reason.
func rejectedEvents(ctx context.Context, h *Harness) (map[events.RejectedKind]int, error) {
	c, err := h.JS.OrderedConsumer(ctx, topology.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.FilterRejectedEvents}})
	if err != nil {
		return nil, err
	}
	out := map[events.RejectedKind]int{}
	for {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			r, err := events.DecodeRejected(m.Data())
			if err != nil || r.Reason == "" {
				return nil, fmt.Errorf("rejected event on %s without a reason: %v", m.Subject(), err)
			}
			out[r.Kind]++
		}
		if n == 0 {
			return out, nil
		}
	}
}

func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
