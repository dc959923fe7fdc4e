//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/admin"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/opsclient"
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

// TestChaosBadInput is scenario 5: a corpus of malformed, oversize,
// wrong-type, wrong-version and hostile messages (bad headers, names with
// wildcards and control characters, 10 MB bodies) is sent on every subject
// — outcome reports, breaker and governance commands, dead letters, permit
// requests, replay deliveries, the DLQ endpoints — and to every admin
// endpoint, interleaved with good reports and dead letters. Invariants: the
// fleet rejects each bad message with a reason (a rejected event per bad
// message JetStream stored, an error answer per request; NATS itself
// refuses what it cannot carry), nothing crashes (every component still
// answers at the end), and no good message is lost: every good report is
// folded exactly once and every good dead letter is in PostgreSQL once,
// replayed or escalated.
func TestChaosBadInput(t *testing.T) {
	h := New(t, "bad-input", Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	goodSvcs := names("good", 3)
	for _, svc := range goodSvcs {
		h.SetConfig(svc, countReplayConfig)
	}
	h.StartBreakerWorker("bw-1")
	h.StartBreakerWorker("bw-2")
	h.StartReplayWorker("rw-1", ReplayOptions{})
	sink := h.NewReplaySink(nil)
	service := h.Client("svc-handler")
	for _, svc := range goodSvcs {
		sink.Serve(service, svc)
	}
	reports := h.NewReports("svc-reporter")
	letters := h.NewDeadLetters("svc-dlq")
	var first []Report
	for _, svc := range goodSvcs {
		first = append(first, Report{Service: svc, Successes: 1})
	}
	if err := reports.Send(ctx, first); err != nil {
		t.Fatal(err)
	}

	badNC := h.Connect("chaos-bad")
	badJS, err := jetstream.New(badNC)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		expected = map[events.RejectedKind]int{} // bad messages JetStream stored, by kind
		edge     = map[string]int{}              // refused by NATS before any worker, by reason
		answered int                             // requests answered with an error
	)
	goodIndex := 0
	good := func() {
		// A good report and, every other time, a good dead letter between
		// two bad messages.
		if err := reports.Send(ctx, []Report{{Service: goodSvcs[goodIndex%len(goodSvcs)], Successes: 2, Failures: 1}}); err != nil {
			t.Fatal(err)
		}
		if goodIndex%2 == 0 {
			if _, err := letters.Submit(ctx, goodSvcs[goodIndex%len(goodSvcs)], goodIndex, 2); err != nil {
				t.Fatal(err)
			}
		}
		goodIndex++
	}
	edgeRefused := func(m badMsg, err error) {
		reason := err.Error()
		switch {
		case errors.Is(err, nats.ErrMaxPayload):
			reason = "maximum payload exceeded"
		case errors.Is(err, nats.ErrBadSubject):
			reason = "invalid subject"
		case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
			reason = "no stream captures the subject"
		}
		mu.Lock()
		edge[reason]++
		mu.Unlock()
		h.Fault("bad-input", fmt.Sprintf("%s on %q: refused by NATS: %s", m.name, clipString(m.subject, 40), reason))
	}

	// JetStream input subjects: each bad message is either refused by NATS
	// or stored, and then must be rejected by a worker.
	validDL, err := json.Marshal(events.DeadLetter{Domain: domain.FailureDomain("infrastructure"), FailureType: "TIMEOUT", Operation: "charge",
		Request: json.RawMessage(`{"n":1}`)})
	if err != nil {
		t.Fatal(err)
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
		corpus = append(corpus, badMsg{p.name, events.MustDLQSubject(goodSvcs[0]), poisonHdr(), []byte(p.body)})
	}
	for _, m := range corpus {
		msg := &nats.Msg{Subject: m.subject, Header: m.header, Data: m.data}
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := badJS.PublishMsg(pctx, msg)
		pcancel()
		if err != nil {
			edgeRefused(m, err)
		} else {
			kind := events.RejectedKindFor(m.subject)
			mu.Lock()
			expected[kind]++
			mu.Unlock()
			h.Fault("bad-input", fmt.Sprintf("%s on %q: stored, to be rejected as %s", m.name, clipString(m.subject, 40), kind))
		}
		good()
	}

	// Permit requests (core request/reply to the breaker-workers).
	for _, b := range []struct{ name, body string }{
		{"not JSON", `{"node":`}, {"wrong type", `{"node":7}`}, {"unknown field", `{"bogus":1}`},
		{"oversize", string(pad(events.MaxPermitBody + 1))}, {"a JSON array", `[]`},
	} {
		_, err := badNC.Request(events.MustPermitSubject("bad-svc"), []byte(b.body), 5*time.Second)
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("chaos: bad permit request %s: %v", b.name, err)
		}
		mu.Lock()
		expected[events.RejectedPermit]++
		mu.Unlock()
		h.Fault("bad-input", "permit request: "+b.name)
		good()
	}

	// Replay deliveries to a service's SDK handler: answered with an
	// error, never handed to the handler.
	replaySubj := events.MustReplaySubject(goodSvcs[0])
	for _, m := range inputCorpus(replaySubj, "", events.TypeReplay,
		`{"service":"good-0","dlq_id":"forged-1","attempt":1,"operation":"charge","request":{}}`,
		`{"service":"good-0","dlq_id":7,"attempt":"one"}`, events.MaxRequestSize+64<<10) {
		msg := &nats.Msg{Subject: m.subject, Header: m.header, Data: m.data}
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := badNC.RequestMsgWithContext(rctx, msg)
		rcancel()
		if err != nil {
			edgeRefused(m, err)
			continue
		}
		var reply events.ReplayReply
		if jerr := json.Unmarshal(resp.Data, &reply); jerr != nil || reply.OK || reply.Error == "" {
			h.Violation("replay delivery %q: answered %q, want an error with a reason", m.name, resp.Data)
		}
		answered++
		h.Fault("bad-input", "replay delivery: "+m.name)
	}

	// The DLQ endpoints: every operation, each bad body answered 400.
	dlqBodies := []struct{ name, body string }{
		{"not JSON", `{`}, {"a JSON array", `[]`}, {"wrong type", `{"id":7,"limit":"ten"}`},
		{"unknown field", `{"bogus":1}`}, {"duplicate field", `{"id":"a","id":"b"}`},
		{"wildcard service", `{"service":"pay.*","id":"x"}`}, {"control characters", `{"id":"\u0000","actor":"a\u001b","reason":"r"}`},
		{"oversize", string(pad(70 << 10))}, {"10 MB body", string(pad(tenMB))},
	}
	for _, op := range events.DLQOps {
		if op == events.DLQOpStats {
			continue // takes no field: a body with one is refused, checked below with the others
		}
		subject, err := events.APIDLQSubject(op)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range dlqBodies {
			resp, err := badNC.Request(subject, []byte(b.body), 10*time.Second)
			m := badMsg{name: b.name, subject: subject}
			if err != nil {
				edgeRefused(m, err)
				continue
			}
			if code := resp.Header.Get("Nats-Service-Error-Code"); code != "400" {
				h.Violation("%s with %s: answered code %q (%s), want 400", subject, b.name, code, resp.Data)
			}
			answered++
			h.Fault("bad-input", subject+": "+b.name)
		}
	}

	// The admin API: every route, bad bodies and hostile names.
	ops, err := opsclient.New(ctx, h.Connect("chaos-admin"), opsclient.WithSource("chaos-admin"), opsclient.WithAuditStore(h.Store),
		opsclient.WithApplyTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	const token = "chaos-token"
	srv, err := admin.New(admin.Config{AdminToken: token}, admin.Deps{JetStream: h.JS, Operator: ops})
	if err != nil {
		t.Fatal(err)
	}
	handler := srv.Handler()
	hostile := []string{"pay.*", "pay>", "a\x01b", strings.Repeat("n", 200), "Pay$ments", "a b", "%00"} // not "..": the mux redirects it to the clean path
	adminBodies := []struct{ name, body string }{
		{"not JSON", `{"reason":`}, {"wrong type", `{"reason":7}`}, {"unknown field", `{"reason":"r","bogus":1}`},
		{"two objects", `{"reason":"r"}{"reason":"r"}`}, {"no reason", `{}`}, {"control characters", `{"reason":"\u0000\u001b"}`},
		{"oversize", string(pad(70 << 10))}, {"10 MB body", string(pad(tenMB))},
	}
	type route struct{ method, path string }
	var routes []route
	for _, svc := range append([]string{"bad-svc"}, hostile...) {
		esc := url.PathEscape(svc)
		routes = append(routes, route{"GET", "/api/breakers/" + esc}, route{"POST", "/api/breakers/" + esc + "/open"},
			route{"POST", "/api/breakers/bad-svc/" + esc}, route{"GET", "/api/dlq/" + esc}, route{"POST", "/api/dlq/" + esc + "/resolve"})
	}
	routes = append(routes, route{"POST", "/api/governance/kill-switch"}, route{"POST", "/api/governance/emergency"},
		route{"POST", "/api/dlq/replay-batch"}, route{"GET", "/api/dlq?service=pay.*&status=nope&limit=-1"},
		route{"GET", "/api/audit?after=-1&limit=100000"}, route{"GET", "/api/dlq?bogus=1"})
	for _, r := range routes {
		bodies := adminBodies
		if r.method == "GET" {
			bodies = bodies[:1]
		}
		for _, b := range bodies {
			req := httptest.NewRequestWithContext(ctx, r.method, r.path, bytes.NewReader([]byte(b.body)))
			req.Host = "127.0.0.1:8080" // the loopback dashboard's own host
			req.Header.Set("Authorization", "Bearer "+token)
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			var e struct {
				Error string `json:"error"`
			}
			if rec.Code < 400 || rec.Code >= 500 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
				h.Violation("admin %s %s with %s: answered %d %s, want a 4xx with a reason", r.method, r.path, b.name, rec.Code, clipString(rec.Body.String(), 200))
			}
			answered++
			h.Fault("bad-input", fmt.Sprintf("admin %s %s: %s", r.method, clipString(r.path, 60), b.name))
		}
	}

	// Every stored bad message is rejected, exactly once, with a reason.
	var got map[events.RejectedKind]int
	if !h.Until(30*time.Second, 100*time.Millisecond, func() bool {
		got, err = rejectedEvents(ctx, h)
		if err != nil {
			return false
		}
		for k, n := range expected {
			if got[k] < n {
				return false
			}
		}
		return true
	}) {
		h.Violation("rejected events %v, want %v (err %v)", got, expected, err)
	}
	_ = pause(ctx, time.Second) // let a duplicate show, if any
	if got, err = rejectedEvents(ctx, h); err != nil {
		t.Fatal(err)
	}
	for k, n := range got {
		if n != expected[k] {
			h.Violation("%d rejected events of kind %s, %d bad messages of that kind stored", n, k, expected[k])
		}
	}
	// The forged replay delivery never reached the handler.
	sink.mu.Lock()
	for id := range sink.deliveries {
		if _, ok := letters.Acked()[id]; !ok {
			h.Violation("the replay handler was handed entry %s, which is no acknowledged dead letter", id)
		}
	}
	sink.mu.Unlock()

	// No crash: everything still answers, and the good messages all made it.
	settle(ctx, h, reports, goodSvcs, 60*time.Second)
	h.CheckFolded(ctx, reports.AckedAll())
	entries := h.CheckDeadLetters(ctx, letters.Acked(), sink, ReplayedOrEscalated)
	var stats struct {
		Counts map[string]map[domain.DLQStatus]int64 `json:"counts"`
	}
	if err := ops.DLQ(ctx, events.DLQOpStats, nil, &stats); err != nil {
		h.Violation("the DLQ endpoints no longer answer: %v", err)
	}
	if _, _, err := ops.Breaker(ctx, goodSvcs[0]); err != nil {
		h.Violation("the breaker state is no longer readable: %v", err)
	}
	req := httptest.NewRequestWithContext(ctx, "GET", "/api/health", nil)
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		h.Violation("admin health answered %d after the corpus", rec.Code)
	}
	var stored int
	for _, n := range expected {
		stored += n
	}
	t.Logf("chaos: %d bad messages stored and rejected %v, %d refused by NATS %v, %d requests answered with an error", stored, got, len(edge), edge, answered)
	h.Finish(Totals{Messages: reports.Messages() + letters.Messages() + int64(h.FaultsOf("bad-input")), Entries: entries})
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
