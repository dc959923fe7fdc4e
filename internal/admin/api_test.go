package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/admin"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// fakeOperator records what the handlers ask of the operator client and
// answers with err when set. The fleet behind the real client is tested in
// internal/opsclient and by the browser test.
type fakeOperator struct {
	mu    sync.Mutex
	err   error
	calls []any
	// hang makes DLQ calls wait for their context to end.
	hang bool
}

func (f *fakeOperator) record(c any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	return f.err
}

func (f *fakeOperator) last() any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return nil
	}
	return f.calls[len(f.calls)-1]
}

type breakerCall struct {
	Svc string
	Cmd events.BreakerCommand
}

type dlqCall struct {
	Op  events.DLQOp
	Req any
}

func (f *fakeOperator) Breaker(_ context.Context, svc string) (domain.Breaker, uint64, error) {
	return domain.NewBreaker(svc), 7, f.record("breaker " + svc)
}

func (f *fakeOperator) BreakerCommand(_ context.Context, svc string, cmd events.BreakerCommand) (opsclient.Applied, error) {
	b := domain.NewBreaker(svc)
	b.LastCommandID = "c-1"
	return opsclient.Applied{CommandID: "c-1", Service: svc, Breaker: b}, f.record(breakerCall{svc, cmd})
}

func (f *fakeOperator) GovernanceState(context.Context) (opsclient.GovernanceStatus, error) {
	return opsclient.GovernanceStatus{}, f.record("governance")
}

func (f *fakeOperator) Governance(_ context.Context, cmd events.GovernanceCommand) (opsclient.GovernanceApplied, error) {
	return opsclient.GovernanceApplied{CommandID: "g-1"}, f.record(cmd)
}

func (f *fakeOperator) DLQ(ctx context.Context, op events.DLQOp, req, resp any) error {
	if err := f.record(dlqCall{op, req}); err != nil {
		return err
	}
	f.mu.Lock()
	hang := f.hang
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	entry := replay.DLQEntryReply{DLQEntry: domain.DLQEntry{ID: "e-1", Service: "payments",
		Request: json.RawMessage(`{"card":"4111"}`), Metadata: json.RawMessage(`{"region":"eu"}`)}}
	switch op {
	case events.DLQOpStats:
		*resp.(*replay.DLQStatsReply) = replay.DLQStatsReply{Counts: map[string]map[domain.DLQStatus]int64{"payments": {"pending": 3}}}
	case events.DLQOpGet:
		*resp.(*replay.DLQEntryReply) = entry
	case events.DLQOpList:
		*resp.(*replay.DLQListReply) = replay.DLQListReply{Entries: []replay.DLQEntryReply{entry}}
	}
	return nil
}

func (f *fakeOperator) AuditList(_ context.Context, q opsclient.AuditQuery) ([]domain.AuditRecord, error) {
	return []domain.AuditRecord{{Seq: q.AfterSeq + 1, Actor: "alice", Action: "breaker.close"}}, f.record(q)
}

func (f *fakeOperator) AuditVerify(context.Context) (opsclient.AuditVerification, error) {
	return opsclient.AuditVerification{}, f.record("verify")
}

// apiServer is a server with a fake operator on an embedded NATS server
// with the topology.
func apiServer(t *testing.T, token string) (*admin.Server, *fakeOperator) {
	t.Helper()
	env := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := topology.Ensure(ctx, env.JS, topology.Config{})
	require.NoError(t, err)
	op := &fakeOperator{}
	srv, err := admin.New(admin.Config{AdminToken: token}, admin.Deps{JetStream: env.JS, Operator: op})
	require.NoError(t, err)
	return srv, op
}

func do(t *testing.T, h http.Handler, method, path, body string, hdr ...string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Host = "127.0.0.1:8080" // as a browser on the loopback dashboard sends it
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out), rec.Body.String())
	}
	return rec, out
}

const tok = "s3cret"

var auth = []string{"Authorization", "Bearer " + tok}

func TestWritesNeedTheToken(t *testing.T) {
	t.Parallel()
	noToken, _ := apiServer(t, "")
	withToken, op := apiServer(t, tok)
	writes := []struct{ path, body string }{
		{"/api/breakers/payments/close", `{"reason":"r"}`},
		{"/api/governance/kill-switch", `{"on":true,"reason":"r"}`},
		{"/api/governance/emergency", `{"level":1,"reason":"r"}`},
		{"/api/dlq/0b6a2a4e-5b0d-4d61-9a43-2b7f0c9e8d15/replay", `{"reason":"r"}`},
		{"/api/dlq/replay-batch", `{"service":"payments","reason":"r"}`},
	}
	for _, w := range writes {
		rec, body := do(t, noToken.Handler(), "POST", w.path, w.body, auth...)
		require.Equal(t, http.StatusForbidden, rec.Code, w.path)
		require.Contains(t, body["error"], "--admin-token (BALDUR_ADMIN_TOKEN) or --admin-operators-file")

		for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Basic " + tok}} {
			rec, body = do(t, withToken.Handler(), "POST", w.path, w.body, h...)
			require.Equal(t, http.StatusUnauthorized, rec.Code, w.path)
			require.Contains(t, body["error"], "admin token")
			require.Contains(t, rec.Header().Get("WWW-Authenticate"), "Bearer")
		}
	}
	require.Empty(t, op.calls, "a refused write reached the fleet")
}

func TestBreakerAction(t *testing.T) {
	t.Parallel()
	srv, op := apiServer(t, tok)
	h := srv.Handler()

	rec, body := do(t, h, "POST", "/api/breakers/payments/close", `{"reason":"vendor fixed","ttl":"30m","trigger_replay":true}`, append(auth, admin.ActorHeader, "alice")...)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "c-1", body["command_id"])
	require.Equal(t, breakerCall{"payments", events.BreakerCommand{Action: domain.ActionClose, Actor: "alice",
		Reason: "vendor fixed", TTL: domain.Duration(30 * time.Minute), TriggerReplay: true}}, op.last())

	rec, _ = do(t, h, "POST", "/api/breakers/payments/metrics-only", `{"reason":"noisy"}`, auth...)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, breakerCall{"payments", events.BreakerCommand{Action: domain.ActionMetricsOnly, Actor: admin.DefaultActor, Reason: "noisy"}}, op.last())

	rec, _ = do(t, h, "POST", "/api/breakers/payments/override", `{"reason":"peak","override":{"failure_threshold":20}}`, auth...)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	for _, tc := range []struct {
		name, path, body string
		status           int
		msg              string
	}{
		{"unknown action", "/api/breakers/payments/explode", `{"reason":"r"}`, 404, "unknown breaker action"},
		{"half_open is the watchdog's", "/api/breakers/payments/half_open", `{"reason":"r"}`, 404, "unknown breaker action"},
		{"bad service", "/api/breakers/no%20spaces/open", `{"reason":"r"}`, 400, "service"},
		{"unknown field", "/api/breakers/payments/open", `{"reason":"r","force":true}`, 400, "unknown field"},
		{"no body", "/api/breakers/payments/open", ``, 400, "body is required"},
		{"trailing data", "/api/breakers/payments/open", `{"reason":"r"} {}`, 400, "after the JSON object"},
		{"no reason", "/api/breakers/payments/open", `{}`, 400, "reason"},
		{"ttl on auto", "/api/breakers/payments/auto", `{"reason":"r","ttl":"1h"}`, 400, "ttl"},
		{"bad ttl", "/api/breakers/payments/open", `{"reason":"r","ttl":"soon"}`, 400, "invalid JSON"},
		{"override without fields", "/api/breakers/payments/override", `{"reason":"r"}`, 400, "override"},
		{"huge body", "/api/breakers/payments/open", `{"reason":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "request body over"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, body := do(t, h, "POST", tc.path, tc.body, auth...)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			require.Contains(t, body["error"], tc.msg)
		})
	}
}

func TestOperatorErrorsMapToStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{&opsclient.RefusedError{CommandID: "c", Code: "kill_switch_on", Reason: "the kill switch is on"}, 409, "kill_switch_on"},
		{fmt.Errorf("%w: no breaker-worker applied the command within 5s", opsclient.ErrNotApplied), 504, ""},
		{fmt.Errorf("%w: bad", opsclient.ErrInvalid), 400, ""},
		{fmt.Errorf("%w: none", opsclient.ErrNotFound), 404, ""},
		{opsclient.ErrNoReplayWorker, 503, ""},
		{opsclient.ErrUnreachable, 503, ""},
		{&opsclient.APIError{Op: "replay", Code: 409, Message: "entry is resolved"}, 409, ""},
		{&opsclient.APIError{Op: "replay", Code: 500, Message: "boom"}, 500, ""},
		{errors.New("surprise"), 500, ""},
	} {
		srv, op := apiServer(t, tok)
		op.err = tc.err
		rec, body := do(t, srv.Handler(), "POST", "/api/breakers/payments/open", `{"reason":"r"}`, auth...)
		require.Equal(t, tc.status, rec.Code, tc.err.Error())
		require.Equal(t, tc.err.Error(), body["error"])
		if tc.code != "" {
			require.Equal(t, tc.code, body["code"])
		}
	}
}

func TestGovernanceRoutes(t *testing.T) {
	t.Parallel()
	srv, op := apiServer(t, tok)
	h := srv.Handler()

	rec, _ := do(t, h, "GET", "/api/governance", "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "governance", op.last())

	rec, body := do(t, h, "POST", "/api/governance/kill-switch", `{"on":true,"reason":"incident 42"}`, auth...)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "g-1", body["command_id"])
	require.Equal(t, events.GovernanceCommand{Action: events.ActionKillSwitchOn, Actor: admin.DefaultActor, Reason: "incident 42"}, op.last())

	rec, _ = do(t, h, "POST", "/api/governance/kill-switch", `{"on":false,"reason":"over"}`, auth...)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, events.ActionKillSwitchOff, op.last().(events.GovernanceCommand).Action)

	rec, _ = do(t, h, "POST", "/api/governance/emergency", `{"level":2,"reason":"db failover"}`, auth...)
	require.Equal(t, http.StatusOK, rec.Code)
	got := op.last().(events.GovernanceCommand)
	require.Equal(t, events.ActionSetEmergencyLevel, got.Action)
	require.Equal(t, domain.EmergencyLevel(2), *got.Level)

	for _, tc := range []struct{ path, body, msg string }{
		{"/api/governance/kill-switch", `{"reason":"r"}`, `"on" is required`},
		{"/api/governance/kill-switch", `{"on":"yes","reason":"r"}`, "invalid JSON"},
		{"/api/governance/kill-switch", `{"on":true}`, "reason"},
		{"/api/governance/emergency", `{"reason":"r"}`, `"level" is required`},
		{"/api/governance/emergency", `{"level":7,"reason":"r"}`, "level"},
	} {
		rec, body := do(t, h, "POST", tc.path, tc.body, auth...)
		require.Equal(t, http.StatusBadRequest, rec.Code, tc.body)
		require.Contains(t, body["error"], tc.msg)
	}
}

func TestDLQRoutes(t *testing.T) {
	t.Parallel()
	srv, op := apiServer(t, tok)
	h := srv.Handler()
	const id = "0b6a2a4e-5b0d-4d61-9a43-2b7f0c9e8d15"

	rec, body := do(t, h, "GET", "/api/dlq/stats", "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, map[string]any{"payments": map[string]any{"pending": float64(3)}}, body["counts"])

	rec, body = do(t, h, "GET", "/api/dlq?service=payments&status=pending,requires_review&older_than=1h&limit=5", "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Len(t, body["entries"], 1)
	want := replay.DLQListRequest{Limit: 5}
	want.Service, want.Status, want.OlderThan = "payments", replay.StatusList{"pending", "requires_review"}, domain.Duration(time.Hour)
	require.Equal(t, dlqCall{events.DLQOpList, want}, op.last())

	for _, q := range []string{"limit=0", "limit=x", "color=red", "older_than=soon", "created_after=yesterday"} {
		rec, _ := do(t, h, "GET", "/api/dlq?"+q, "")
		require.Equal(t, http.StatusBadRequest, rec.Code, q)
	}

	rec, _ = do(t, h, "GET", "/api/dlq/"+id, "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, dlqCall{events.DLQOpGet, replay.DLQGetRequest{ID: id}}, op.last())

	for _, tc := range []struct {
		action string
		op     events.DLQOp
		req    any
	}{
		{"replay", events.DLQOpReplay, replay.DLQReplayRequest{ID: id, Actor: "bob", Reason: "fixed"}},
		{"requeue", events.DLQOpRequeue, replay.DLQRequeueRequest{ID: id, Actor: "bob", Reason: "fixed"}},
		{"discard", events.DLQOpDiscard, replay.DLQCloseRequest{ID: id, Actor: "bob", Reason: "fixed"}},
		{"resolve", events.DLQOpResolve, replay.DLQCloseRequest{ID: id, Actor: "bob", Reason: "fixed"}},
	} {
		rec, _ := do(t, h, "POST", "/api/dlq/"+id+"/"+tc.action, `{"reason":"fixed"}`, append(auth, admin.ActorHeader, "bob")...)
		require.Equal(t, http.StatusOK, rec.Code, tc.action)
		require.Equal(t, dlqCall{tc.op, tc.req}, op.last())
	}
	rec, _ = do(t, h, "POST", "/api/dlq/"+id+"/resolve", `{"reason":"fixed","note":"refunded by hand"}`, auth...)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "refunded by hand", op.last().(dlqCall).Req.(replay.DLQCloseRequest).Note)

	rec, _ = do(t, h, "POST", "/api/dlq/replay-batch", `{"service":"payments","dry_run":true,"limit":10,"reason":"drain"}`, auth...)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	batch := op.last().(dlqCall).Req.(replay.DLQReplayBatchRequest)
	require.Equal(t, "payments", batch.Service)
	require.True(t, batch.DryRun)
	require.Equal(t, 10, batch.Limit)

	for _, tc := range []struct {
		path, body string
		status     int
	}{
		{"/api/dlq/" + id + "/explode", `{"reason":"r"}`, 404},
		{"/api/dlq/" + id + "/replay", `{}`, 400},
		{"/api/dlq/" + id + "/replay", `{"reason":"r","note":"n"}`, 400},
		{"/api/dlq/" + id + "/replay", `{"reason":"r","priority":1}`, 400},
		{"/api/dlq/replay-batch", `{"service":"payments"}`, 400},
	} {
		rec, body := do(t, h, "POST", tc.path, tc.body, auth...)
		require.Equal(t, tc.status, rec.Code, tc.path+" "+tc.body)
		require.NotEmpty(t, body["error"])
	}

	op.err = fmt.Errorf("%w (baldur.api.dlq.stats)", opsclient.ErrNoReplayWorker)
	rec, body = do(t, h, "GET", "/api/dlq/stats", "")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Contains(t, body["error"], "no replay-worker")
}

func TestAuditRoutes(t *testing.T) {
	t.Parallel()
	srv, op := apiServer(t, tok)
	h := srv.Handler()

	rec, body := do(t, h, "GET", "/api/audit?subject=breaker:payments&after=4&limit=1", "")
	require.Equal(t, http.StatusUnauthorized, rec.Code, "the audit log needs the token")
	require.Contains(t, body["error"], "audit records need the admin token")
	require.Empty(t, op.snapshot(), "nothing read without the token")

	rec, body = do(t, h, "GET", "/api/audit?subject=breaker:payments&after=4&limit=1", "", auth...)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, opsclient.AuditQuery{Subject: "breaker:payments", AfterSeq: 4, Limit: 1}, op.last())
	require.Len(t, body["records"], 1)
	require.Equal(t, float64(5), body["next_after"])

	for _, q := range []string{"limit=0", "limit=5000", "after=-1", "who=me"} {
		rec, _ := do(t, h, "GET", "/api/audit?"+q, "", auth...)
		require.Equal(t, http.StatusBadRequest, rec.Code, q)
	}

	rec, body = do(t, h, "GET", "/api/audit/verify", "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, true, body["intact"])

	op.err = fmt.Errorf("%w: seq 3", opsclient.ErrAuditBroken)
	rec, _ = do(t, h, "GET", "/api/audit/verify", "")
	require.Equal(t, http.StatusConflict, rec.Code)

	op.err = fmt.Errorf("%w: give --database-url", opsclient.ErrNoDatabase)
	rec, body = do(t, h, "GET", "/api/audit", "", auth...)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Contains(t, body["error"], "--database-url")
}

func TestStaticAndUnknownRoutes(t *testing.T) {
	t.Parallel()
	srv, op := apiServer(t, tok)
	h := srv.Handler()

	rec, _ := do(t, h, "GET", "/", "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), `<script src="app.js" defer></script>`)
	require.Contains(t, rec.Header().Get("Content-Security-Policy"), "default-src 'self'")
	for _, f := range []string{"/app.js", "/app.css"} {
		rec, _ := do(t, h, "GET", f, "")
		require.Equal(t, http.StatusOK, rec.Code, f)
	}
	rec, _ = do(t, h, "POST", "/", "")
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)

	rec, body := do(t, h, "GET", "/api/nothing", "")
	require.Equal(t, http.StatusNotFound, rec.Code)
	require.Contains(t, body["error"], "no API route")
	rec, body = do(t, h, "DELETE", "/api/breakers/payments", "")
	require.Equal(t, http.StatusNotFound, rec.Code)
	require.Contains(t, body["error"], "DELETE /api/breakers/payments")

	rec, body = do(t, h, "GET", "/api/breakers/payments", "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, float64(7), body["revision"])
	require.Equal(t, "breaker payments", op.last())
	rec, _ = do(t, h, "GET", "/api/breakers/bad%20name", "")
	require.Equal(t, http.StatusBadRequest, rec.Code)
}

// sseReader reads server-sent events.
type sseReader struct{ r *bufio.Reader }

func (s sseReader) next(t *testing.T) (string, []byte) {
	t.Helper()
	var name string
	for {
		line, err := s.r.ReadString('\n')
		require.NoError(t, err)
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			return name, []byte(strings.TrimPrefix(line, "data: "))
		}
	}
}

func TestLiveFeedAndSSE(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	top, err := topology.Ensure(ctx, env.JS, topology.Config{})
	require.NoError(t, err)
	put := func(b domain.Breaker) {
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		_, err = top.Breakers.Put(ctx, b.Service, raw)
		require.NoError(t, err)
	}
	orders := domain.NewBreaker("orders")
	put(orders)

	srv, err := admin.New(admin.Config{Addr: "127.0.0.1:0", DLQPoll: time.Hour}, admin.Deps{JetStream: env.JS, Operator: &fakeOperator{}})
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	t.Cleanup(func() { require.NoError(t, srv.Stop(context.Background())) })

	rec, body := do(t, srv.Handler(), "GET", "/api/breakers", "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Len(t, body["breakers"], 1)

	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+srv.Addr()+"/api/events", nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Body.Close() })
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	sse := sseReader{bufio.NewReader(res.Body)}

	name, data := sse.next(t)
	require.Equal(t, "snapshot", name)
	var snap admin.Snapshot
	require.NoError(t, json.Unmarshal(data, &snap))
	require.Len(t, snap.Breakers, 1)
	require.Equal(t, "orders", snap.Breakers[0].Service)
	require.NotNil(t, snap.DLQ, "the first DLQ poll runs at start")

	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	payments := domain.NewBreaker("payments")
	payments.State, payments.Generation = domain.StateOpen, 1
	payments.Window.Successes, payments.Window.Failures, payments.Window.FailureRate = 2, 8, 80
	payments.LastTransition = &domain.LastTransition{From: domain.StateClosed, To: domain.StateOpen, Trigger: domain.TriggerAuto, At: at}
	put(payments)
	name, data = sse.next(t)
	require.Equal(t, "breaker", name)
	var row admin.BreakerSummary
	require.NoError(t, json.Unmarshal(data, &row))
	require.Equal(t, admin.BreakerSummary{Service: "payments", State: domain.StateOpen, Mode: domain.ModeAuto,
		FailureRate: 80, Calls: 10, Failures: 8, Generation: 1, Since: at}, row)

	_, err = top.Governance.Put(ctx, string(events.GovernanceKillSwitch), []byte(`{"active":true,"actor":"alice","reason":"incident"}`))
	require.NoError(t, err)
	name, data = sse.next(t)
	require.Equal(t, "governance", name)
	var g domain.Governance
	require.NoError(t, json.Unmarshal(data, &g))
	require.True(t, g.KillSwitch.Active)

	require.NoError(t, top.Breakers.Delete(ctx, "orders"))
	name, data = sse.next(t)
	require.Equal(t, "breaker_removed", name)
	require.JSONEq(t, `{"service":"orders"}`, string(data))
}

func TestStartOnATakenPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	env := testenv.NATS(t)
	srv, err := admin.New(admin.Config{Addr: ln.Addr().String()}, admin.Deps{JetStream: env.JS, Operator: &fakeOperator{}})
	require.NoError(t, err)
	err = srv.Start(context.Background())
	require.ErrorIs(t, err, admin.ErrListen)
	require.Contains(t, err.Error(), ln.Addr().String())
	require.Contains(t, err.Error(), "--http-addr")
}

func TestNewRefusesMissingDeps(t *testing.T) {
	t.Parallel()
	_, err := admin.New(admin.Config{}, admin.Deps{})
	require.ErrorIs(t, err, admin.ErrConfig)
}
