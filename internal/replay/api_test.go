package replay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
)

// apiT0 is the API tests' clock: entries are created before it.
var apiT0 = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

// apiReplayer is a Replayer that records its calls and replays for real in
// the store: lease, claim, complete, release.
type apiReplayer struct {
	store *store.Store
	mu    sync.Mutex
	calls []apiReplayCall
	// blocked, when set, is the governance reason every replay is
	// blocked with.
	blocked string
}

func (r *apiReplayer) block(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blocked = reason
}

func (r *apiReplayer) Gate(string) (replay.StopReason, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.blocked != "" {
		return replay.StopGovernance, r.blocked
	}
	return "", ""
}

type apiReplayCall struct {
	svc  string
	ids  []string
	opts replay.ReplayOptions
}

func (r *apiReplayer) ReplayEntries(ctx context.Context, svc string, ids []string, opts replay.ReplayOptions) (replay.ReplayResult, error) {
	r.mu.Lock()
	r.calls = append(r.calls, apiReplayCall{svc, ids, opts})
	blocked := r.blocked
	r.mu.Unlock()
	if blocked != "" {
		return replay.ReplayResult{Service: svc, Trigger: opts.Trigger, GovernanceBlocked: true, GovernanceBlockReason: blocked,
			Stop: replay.StopGovernance}, nil
	}
	l, err := r.store.AcquireLease(ctx, svc, "api-test", time.Minute, apiT0)
	if err != nil {
		return replay.ReplayResult{}, err
	}
	claimed, err := r.store.ClaimEntries(ctx, svc, l.Token, ids, apiT0)
	if err != nil {
		return replay.ReplayResult{}, err
	}
	done, err := r.store.CompleteBatch(ctx, apiIDs(claimed), l.Token, apiT0)
	if err != nil {
		return replay.ReplayResult{}, err
	}
	if err := r.store.ReleaseLease(ctx, svc, l.Token, apiT0); err != nil {
		return replay.ReplayResult{}, err
	}
	return replay.ReplayResult{Service: svc, Trigger: opts.Trigger, Total: len(claimed), Success: len(done), Stop: replay.StopDrained}, nil
}

func (r *apiReplayer) Calls() []apiReplayCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]apiReplayCall(nil), r.calls...)
}

type apiEnv struct {
	nc       *nats.Conn
	store    *store.Store
	api      *replay.API
	replayer *apiReplayer
}

// apiSetup starts the DLQ API over a fresh database and server; withReplayer
// false starts it without a Replayer.
func apiSetup(t *testing.T, withReplayer bool) *apiEnv {
	t.Helper()
	n := testenv.NATS(t)
	st := store.New(testenv.Postgres(t), store.WithClock(func() time.Time { return apiT0 }), store.WithAuditKey(testenv.AuditKey))
	env := &apiEnv{nc: n.Conn, store: st}
	var r replay.Replayer
	if withReplayer {
		env.replayer = &apiReplayer{store: st}
		r = env.replayer
	}
	env.api = replay.NewAPI(n.Conn, st, r, replay.APIConfig{Node: "api-test-1", Now: func() time.Time { return apiT0 }})
	require.NoError(t, env.api.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, env.api.Stop(context.Background())) })
	return env
}

// apiEntry returns a dead letter of svc created age before apiT0.
func apiEntry(svc string, age time.Duration, dom domain.FailureDomain, failureType string) domain.DLQEntry {
	return domain.DLQEntry{
		ID: uuid.NewString(), Service: svc, Domain: dom, FailureType: failureType, Operation: "charge",
		Request: json.RawMessage(`{"amount": 42}`), ErrorMessage: "upstream timeout", LastError: "upstream timeout",
		MaxRetries: 2, CreatedAt: apiT0.Add(-age),
	}
}

func apiIDs(es []domain.DLQEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func (e *apiEnv) insert(t *testing.T, entries ...domain.DLQEntry) {
	t.Helper()
	res, err := e.store.InsertEntries(t.Context(), entries)
	require.NoError(t, err)
	require.Len(t, res.Inserted, len(entries))
}

// call sends body to baldur.api.dlq.<op> and returns the reply.
func (e *apiEnv) call(t *testing.T, op events.DLQOp, body string) *nats.Msg {
	t.Helper()
	subj, err := events.APIDLQSubject(op)
	require.NoError(t, err)
	msg, err := e.nc.Request(subj, []byte(body), 10*time.Second)
	require.NoError(t, err)
	return msg
}

// ok calls op, requires a successful reply and decodes it into out.
func (e *apiEnv) ok(t *testing.T, op events.DLQOp, body string, out any) {
	t.Helper()
	msg := e.call(t, op, body)
	require.Empty(t, msg.Header.Get(micro.ErrorCodeHeader), "%s %s: %s", op, body, msg.Data)
	require.NoError(t, json.Unmarshal(msg.Data, out), "%s", msg.Data)
}

// fail calls op, requires an error reply with code and returns its message.
func (e *apiEnv) fail(t *testing.T, op events.DLQOp, body string, code int) string {
	t.Helper()
	msg := e.call(t, op, body)
	require.Equal(t, fmt.Sprint(code), msg.Header.Get(micro.ErrorCodeHeader), "%s %s: %s", op, body, msg.Data)
	require.NotEmpty(t, msg.Header.Get(micro.ErrorHeader))
	var reply replay.ErrorReply
	dec := json.NewDecoder(strings.NewReader(string(msg.Data)))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&reply), "error body %s", msg.Data)
	require.NotEmpty(t, reply.Error)
	return reply.Error
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestAPIGetAndStats(t *testing.T) {
	t.Parallel()
	env := apiSetup(t, true)
	a := apiEntry("payments", time.Hour, domain.DomainExternalService, "TIMEOUT")
	a.LastError = ""
	b := apiEntry("payments", 2*time.Hour, domain.DomainExternalService, "TIMEOUT")
	c := apiEntry("email", time.Hour, domain.DomainNotification, "SMTP_421")
	env.insert(t, a, b, c)

	var raw map[string]json.RawMessage
	env.ok(t, events.DLQOpGet, mustJSON(t, map[string]string{"id": a.ID}), &raw)
	for _, field := range []string{"id", "service", "status", "retry_count", "max_retries", "last_error"} {
		require.Contains(t, raw, field, "get answers %s", field)
	}
	var got replay.DLQEntryReply
	env.ok(t, events.DLQOpGet, mustJSON(t, map[string]string{"id": strings.ToUpper(b.ID)}), &got)
	require.Equal(t, b.ID, got.ID)
	require.Equal(t, "payments", got.Service)
	require.Equal(t, domain.DLQPending, got.Status)
	require.Equal(t, 2, got.MaxRetries)
	require.Equal(t, "upstream timeout", got.LastError)
	require.JSONEq(t, `{"amount": 42}`, string(got.Request))

	env.fail(t, events.DLQOpGet, mustJSON(t, map[string]string{"id": uuid.NewString()}), 404)

	var stats replay.DLQStatsReply
	env.ok(t, events.DLQOpStats, "", &stats)
	require.Equal(t, map[string]map[domain.DLQStatus]int64{
		"payments": {domain.DLQPending: 2},
		"email":    {domain.DLQPending: 1},
	}, stats.Counts)
	require.Equal(t, map[domain.DLQStatus]int64{domain.DLQPending: 3}, stats.Totals)
	require.Equal(t, 2, stats.Services)
	require.Empty(t, stats.Next)
	env.ok(t, events.DLQOpStats, "{}", &stats)
	var one replay.DLQStatsReply
	env.ok(t, events.DLQOpStats, `{"service":"email"}`, &one)
	require.Equal(t, map[string]map[domain.DLQStatus]int64{"email": {domain.DLQPending: 1}}, one.Counts)
	require.Equal(t, map[domain.DLQStatus]int64{domain.DLQPending: 1}, one.Totals)
}

// TestAPIStatsPagesTwentyThousandServices: with dead letters of 20,000
// services, every page of stats answers within 5 s and stays far below the
// NATS payload limit, and the pages together count every service once.
func TestAPIStatsPagesTwentyThousandServices(t *testing.T) {
	t.Parallel()
	env := apiSetup(t, false)
	const n = 20_000
	entries := make([]domain.DLQEntry, 0, 2000)
	for i := range n {
		entries = append(entries, apiEntry(fmt.Sprintf("svc-%05d", i), time.Minute, domain.DomainExternalService, "TIMEOUT"))
		if len(entries) == cap(entries) {
			_, err := env.store.InsertEntries(t.Context(), entries)
			require.NoError(t, err)
			entries = entries[:0]
		}
	}
	subj, err := events.APIDLQSubject(events.DLQOpStats)
	require.NoError(t, err)
	seen := map[string]bool{}
	after, pages := "", 0
	for {
		start := time.Now()
		msg, err := env.nc.Request(subj, []byte(mustJSON(t, map[string]any{"after": after, "limit": replay.MaxStatsLimit})), 10*time.Second)
		require.NoError(t, err)
		took := time.Since(start)
		require.Less(t, took, 5*time.Second, "page %d", pages)
		require.Less(t, len(msg.Data), int(env.nc.MaxPayload())/2, "page %d is %d bytes", pages, len(msg.Data))
		var page replay.DLQStatsReply
		require.NoError(t, json.Unmarshal(msg.Data, &page), string(msg.Data[:min(len(msg.Data), 200)]))
		require.Equal(t, n, page.Services)
		require.EqualValues(t, n, page.Totals[domain.DLQPending])
		for svc := range page.Counts {
			require.False(t, seen[svc], "%s on two pages", svc)
			seen[svc] = true
		}
		pages++
		t.Logf("page %d: %d services, %d bytes, %s", pages, len(page.Counts), len(msg.Data), took)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	require.Len(t, seen, n)
	require.Equal(t, n/replay.MaxStatsLimit, pages)
}

func TestAPIListFiltersAndPaging(t *testing.T) {
	t.Parallel()
	env := apiSetup(t, true)
	var all []domain.DLQEntry
	for i := range 7 {
		all = append(all, apiEntry("payments", time.Duration(10-i)*time.Hour, domain.DomainExternalService, "TIMEOUT"))
	}
	email := apiEntry("email", 30*time.Minute, domain.DomainNotification, "SMTP_421")
	env.insert(t, append(all, email)...)
	_, err := env.store.Resolve(t.Context(), all[0].ID, "fixed", store.Change{Actor: "op", Reason: "r"})
	require.NoError(t, err)

	// Paging: 3 at a time through every entry, oldest first, none twice.
	var (
		seen   []string
		cursor string
	)
	for range 10 {
		var page replay.DLQListReply
		env.ok(t, events.DLQOpList, mustJSON(t, map[string]any{"limit": 3, "cursor": cursor}), &page)
		require.LessOrEqual(t, len(page.Entries), 3)
		for _, e := range page.Entries {
			require.Empty(t, e.Request, "list leaves request bodies to get")
			seen = append(seen, e.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	require.Equal(t, append(apiIDs(all), email.ID), seen)

	tests := []struct {
		name   string
		filter map[string]any
		want   []string
	}{
		{"service", map[string]any{"service": "email"}, []string{email.ID}},
		{"status string", map[string]any{"status": "resolved"}, []string{all[0].ID}},
		{"status list", map[string]any{"status": []string{"resolved", "rejected"}, "service": "payments"}, []string{all[0].ID}},
		{"domain", map[string]any{"domain": "notification"}, []string{email.ID}},
		{"failure type", map[string]any{"failure_type": "SMTP_421"}, []string{email.ID}},
		{"older than", map[string]any{"older_than": "8h30m"}, apiIDs(all[:2])},
		{"newer than", map[string]any{"newer_than": "1h"}, []string{email.ID}},
		{"created between", map[string]any{
			"created_after": apiT0.Add(-9 * time.Hour).Format(time.RFC3339), "created_before": apiT0.Add(-7 * time.Hour).Format(time.RFC3339),
		}, apiIDs(all[1:3])},
		{"nothing", map[string]any{"service": "nobody"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var page replay.DLQListReply
			env.ok(t, events.DLQOpList, mustJSON(t, tt.filter), &page)
			var got []string
			for _, e := range page.Entries {
				got = append(got, e.ID)
			}
			require.Equal(t, tt.want, got)
			require.Empty(t, page.NextCursor)
		})
	}
}

func TestAPIOperatorChanges(t *testing.T) {
	t.Parallel()
	env := apiSetup(t, true)
	ctx := t.Context()
	a := apiEntry("payments", time.Hour, domain.DomainExternalService, "TIMEOUT")
	b := apiEntry("payments", time.Hour, domain.DomainExternalService, "TIMEOUT")
	c := apiEntry("payments", time.Hour, domain.DomainExternalService, "TIMEOUT")
	env.insert(t, a, b, c)

	var got replay.DLQEntryReply
	env.ok(t, events.DLQOpResolve, mustJSON(t, map[string]string{"id": a.ID, "actor": "oncall", "reason": "INC-1", "note": "refunded by hand"}), &got)
	require.Equal(t, domain.DLQResolved, got.Status)
	require.Equal(t, domain.ResolutionManualFix, got.ResolutionType)
	require.Equal(t, "refunded by hand", got.ResolutionNote)

	env.ok(t, events.DLQOpDiscard, mustJSON(t, map[string]string{"id": b.ID, "actor": "oncall", "reason": "duplicate order"}), &got)
	require.Equal(t, domain.DLQRejected, got.Status)
	require.Equal(t, "duplicate order", got.ResolutionNote)

	// A pending entry cannot be requeued; one under review can.
	msg := env.fail(t, events.DLQOpRequeue, mustJSON(t, map[string]string{"id": c.ID, "actor": "oncall", "reason": "retry"}), 409)
	require.Contains(t, msg, "pending")
	_, err := env.store.Review(ctx, c.ID, domain.DLQReviewing, store.Change{Actor: "oncall", Reason: "look"})
	require.NoError(t, err)
	env.ok(t, events.DLQOpRequeue, mustJSON(t, map[string]string{"id": c.ID, "actor": "oncall", "reason": "retry"}), &got)
	require.Equal(t, domain.DLQPending, got.Status)

	// Closed entries refuse further changes.
	env.fail(t, events.DLQOpDiscard, mustJSON(t, map[string]string{"id": a.ID, "actor": "oncall", "reason": "again"}), 409)
	env.fail(t, events.DLQOpResolve, mustJSON(t, map[string]string{"id": uuid.NewString(), "actor": "oncall", "reason": "x"}), 404)

	// Every change is audited with its actor and reason, once.
	recs, err := env.store.ListAudit(ctx, "", 0, 100)
	require.NoError(t, err)
	var actions []string
	for _, r := range recs {
		require.Equal(t, "oncall", r.Actor)
		actions = append(actions, r.Action+" "+r.Subject+" "+r.Reason)
	}
	require.Equal(t, []string{
		store.AuditDLQClose + " dlq:" + a.ID + " INC-1",
		store.AuditDLQClose + " dlq:" + b.ID + " duplicate order",
		store.AuditDLQReview + " dlq:" + c.ID + " look",
		store.AuditDLQRequeue + " dlq:" + c.ID + " retry",
	}, actions)
	_, err = env.store.VerifyAuditChain(ctx, nil)
	require.NoError(t, err)
}

func TestAPIReplayOne(t *testing.T) {
	t.Parallel()
	env := apiSetup(t, true)
	ctx := t.Context()
	a := apiEntry("payments", time.Hour, domain.DomainExternalService, "TIMEOUT")
	b := apiEntry("payments", time.Hour, domain.DomainExternalService, "TIMEOUT")
	env.insert(t, a, b)

	var got replay.DLQReplayReply
	env.ok(t, events.DLQOpReplay, mustJSON(t, map[string]string{"id": a.ID, "actor": "oncall", "reason": "vendor is back"}), &got)
	require.Equal(t, domain.DLQReplayed, got.Entry.Status)
	require.Equal(t, 1, got.Result.SuccessCount)
	require.Equal(t, "payments", got.Result.Service)
	calls := env.replayer.Calls()
	require.Len(t, calls, 1)
	require.Equal(t, "payments", calls[0].svc)
	require.Equal(t, []string{a.ID}, calls[0].ids)
	require.Equal(t, events.BatchTriggerOperator, calls[0].opts.Trigger)
	require.Equal(t, "oncall", calls[0].opts.Actor)

	// Replayed is final: a second replay is a conflict, and nothing is
	// delivered.
	msg := env.fail(t, events.DLQOpReplay, mustJSON(t, map[string]string{"id": a.ID, "actor": "oncall", "reason": "again"}), 409)
	require.Contains(t, msg, "replayed")
	env.fail(t, events.DLQOpReplay, mustJSON(t, map[string]string{"id": uuid.NewString(), "actor": "oncall", "reason": "x"}), 404)
	require.Len(t, env.replayer.Calls(), 1)

	recs, err := env.store.ListAudit(ctx, "dlq:"+a.ID, 0, 10)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, replay.AuditDLQReplay, recs[0].Action)
	require.Equal(t, "vendor is back", recs[0].Reason)
}

func TestAPIReplayBatch(t *testing.T) {
	t.Parallel()
	env := apiSetup(t, true)
	ctx := t.Context()
	var pay []domain.DLQEntry
	for i := range 5 {
		pay = append(pay, apiEntry("payments", time.Duration(10-i)*time.Hour, domain.DomainExternalService, "TIMEOUT"))
	}
	mail := apiEntry("email", 20*time.Hour, domain.DomainNotification, "SMTP_421")
	other := apiEntry("payments", time.Hour, domain.DomainDataSync, "CONFLICT")
	env.insert(t, append(pay, mail, other)...)

	var dry replay.DLQReplayBatchReply
	env.ok(t, events.DLQOpReplayBatch, `{"domain": "external_service", "dry_run": true, "limit": 3, "actor": "oncall", "reason": "check"}`, &dry)
	require.Equal(t, replay.DLQReplayBatchReply{DryRun: true, Matched: 5, Count: 3,
		Results: []replay.ReplaySummary{{Service: "payments", Total: 3}}}, dry)
	require.Empty(t, env.replayer.Calls(), "a dry run replays nothing")

	// Governance blocks: the dry run says so, and a real run says it
	// replayed nothing (not "3 of 5").
	env.replayer.block("kill switch is on (by ic: INC-1)")
	env.ok(t, events.DLQOpReplayBatch, `{"domain": "external_service", "dry_run": true, "limit": 3, "actor": "oncall", "reason": "check"}`, &dry)
	require.Equal(t, 3, dry.Blocked)
	require.True(t, dry.Results[0].GovernanceBlocked)
	require.Equal(t, "kill switch is on (by ic: INC-1)", dry.Results[0].GovernanceBlockReason)
	var none replay.DLQReplayBatchReply
	env.ok(t, events.DLQOpReplayBatch, `{"domain": "external_service", "limit": 3, "actor": "oncall", "reason": "try"}`, &none)
	require.Equal(t, 3, none.Count)
	require.Zero(t, none.Replayed)
	require.Equal(t, 3, none.Blocked)
	env.replayer.block("")
	env.replayer.mu.Lock()
	env.replayer.calls = nil
	env.replayer.mu.Unlock()
	env.ok(t, events.DLQOpReplayBatch, `{"dry_run": true, "actor": "oncall", "reason": "check"}`, &dry)
	require.EqualValues(t, 7, dry.Matched)

	var res replay.DLQReplayBatchReply
	env.ok(t, events.DLQOpReplayBatch, `{"failure_type": "TIMEOUT", "limit": 3, "actor": "oncall", "reason": "vendor is back"}`, &res)
	require.False(t, res.DryRun)
	require.EqualValues(t, 5, res.Matched)
	require.Equal(t, 3, res.Count)
	require.Equal(t, 3, res.Replayed)
	require.Zero(t, res.Blocked)
	require.Len(t, res.Results, 1)
	require.Equal(t, 3, res.Results[0].SuccessCount)
	calls := env.replayer.Calls()
	require.Len(t, calls, 1)
	require.Equal(t, apiIDs(pay[:3]), calls[0].ids, "oldest first")

	// Two services: one call each, the service with the oldest entry first.
	env.ok(t, events.DLQOpReplayBatch, `{"actor": "oncall", "reason": "drain everything"}`, &res)
	require.Equal(t, 4, res.Count)
	require.Len(t, res.Results, 2)
	require.Equal(t, "email", res.Results[0].Service)
	require.Equal(t, "payments", res.Results[1].Service)

	var stats replay.DLQStatsReply
	env.ok(t, events.DLQOpStats, "", &stats)
	require.Equal(t, map[string]map[domain.DLQStatus]int64{
		"payments": {domain.DLQReplayed: 6}, "email": {domain.DLQReplayed: 1},
	}, stats.Counts)

	// Nothing matches: no call, no audit record.
	env.ok(t, events.DLQOpReplayBatch, `{"actor": "oncall", "reason": "again"}`, &res)
	require.Zero(t, res.Count)
	recs, err := env.store.ListAudit(ctx, "dlq:batch", 0, 10)
	require.NoError(t, err)
	require.Len(t, recs, 3, "the blocked batch is audited too")
	require.Equal(t, replay.AuditDLQReplayBatch, recs[0].Action)
}

func TestAPIWithoutReplayer(t *testing.T) {
	t.Parallel()
	env := apiSetup(t, false)
	a := apiEntry("payments", time.Hour, domain.DomainExternalService, "TIMEOUT")
	env.insert(t, a)
	env.fail(t, events.DLQOpReplay, mustJSON(t, map[string]string{"id": a.ID, "actor": "o", "reason": "r"}), 503)
	env.fail(t, events.DLQOpReplayBatch, `{"actor": "o", "reason": "r"}`, 503)
	var dry replay.DLQReplayBatchReply
	env.ok(t, events.DLQOpReplayBatch, `{"dry_run": true, "actor": "o", "reason": "r"}`, &dry)
	require.EqualValues(t, 1, dry.Count)
}

func TestAPIBadRequests(t *testing.T) {
	t.Parallel()
	env := apiSetup(t, true)
	id := uuid.NewString()
	tests := []struct {
		name    string
		op      events.DLQOp
		body    string
		mention string
	}{
		{"invalid JSON", events.DLQOpGet, `{"id": `, "not valid JSON"},
		{"not an object", events.DLQOpList, `[1, 2]`, "JSON object"},
		{"trailing data", events.DLQOpGet, `{"id": "x"} {}`, "not valid JSON"},
		{"unknown field", events.DLQOpGet, `{"id": "` + id + `", "force": true}`, `unknown field "force"`},
		{"mis-cased field", events.DLQOpGet, `{"ID": "` + id + `"}`, `unknown field "ID"`},
		{"duplicate field", events.DLQOpGet, `{"id": "` + id + `", "id": "` + id + `"}`, "twice"},
		{"wrong type", events.DLQOpList, `{"limit": "ten"}`, `"limit"`},
		{"missing id", events.DLQOpGet, `{}`, `"id" is required`},
		{"bad id", events.DLQOpGet, `{"id": "42"}`, "not a UUID"},
		{"bad id on a write", events.DLQOpResolve, `{"id": "nope", "actor": "a", "reason": "r"}`, "not a UUID"},
		{"missing actor", events.DLQOpDiscard, `{"id": "` + id + `", "reason": "r"}`, `"actor" is required`},
		{"missing reason", events.DLQOpRequeue, `{"id": "` + id + `", "actor": "a"}`, `"reason" is required`},
		{"blank reason", events.DLQOpReplay, `{"id": "` + id + `", "actor": "a", "reason": "  "}`, `"reason" is required`},
		{"control character", events.DLQOpResolve, `{"id": "` + id + `", "actor": "a\u0007", "reason": "r"}`, "control character"},
		{"note on requeue", events.DLQOpRequeue, `{"id": "` + id + `", "actor": "a", "reason": "r", "note": "n"}`, `unknown field "note"`},
		{"batch without actor", events.DLQOpReplayBatch, `{"dry_run": true, "reason": "r"}`, `"actor" is required`},
		{"batch of replayed entries", events.DLQOpReplayBatch, `{"status": "replayed", "actor": "a", "reason": "r"}`, "cannot be replayed"},
		{"batch limit", events.DLQOpReplayBatch, `{"limit": 100000, "actor": "a", "reason": "r"}`, `"limit"`},
		{"unknown status", events.DLQOpList, `{"status": "lost"}`, `unknown status "lost"`},
		{"unknown domain", events.DLQOpList, `{"domain": "moon"}`, `unknown domain "moon"`},
		{"bad service", events.DLQOpList, `{"service": "a b"}`, `"service"`},
		{"limit too large", events.DLQOpList, `{"limit": 5000}`, `"limit"`},
		{"negative limit", events.DLQOpList, `{"limit": -1}`, `"limit"`},
		{"bad cursor", events.DLQOpList, `{"cursor": "!!!"}`, "cursor"},
		{"bad age", events.DLQOpList, `{"older_than": "soon"}`, "older_than"},
		{"age and bound", events.DLQOpList, `{"older_than": "1h", "created_before": "2026-01-01T00:00:00Z"}`, "not both"},
		{"empty range", events.DLQOpList, `{"newer_than": "1h", "older_than": "2h"}`, "not before"},
		{"bad time", events.DLQOpList, `{"created_after": "yesterday"}`, "created_after"},
		{"stats unknown field", events.DLQOpStats, `{"services": "payments"}`, `unknown field "services"`},
		{"stats bad service", events.DLQOpStats, `{"service": "pay.*"}`, `"service"`},
		{"stats limit too large", events.DLQOpStats, `{"limit": 5001}`, `"limit" is 5001; want 1..5000`},
		{"stats negative limit", events.DLQOpStats, `{"limit": -1}`, `"limit"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := env.fail(t, tt.op, tt.body, 400)
			require.Contains(t, msg, tt.mention)
		})
	}
	// The service is still answering.
	var stats replay.DLQStatsReply
	env.ok(t, events.DLQOpStats, "", &stats)
}

func TestAPIMicroDiscovery(t *testing.T) {
	t.Parallel()
	env := apiSetup(t, true)
	env.ok(t, events.DLQOpStats, "", &replay.DLQStatsReply{})

	subj, err := micro.ControlSubject(micro.InfoVerb, events.DLQServiceName, "")
	require.NoError(t, err)
	msg, err := env.nc.Request(subj, nil, 5*time.Second)
	require.NoError(t, err)
	var info micro.Info
	require.NoError(t, json.Unmarshal(msg.Data, &info))
	require.Equal(t, events.DLQServiceName, info.Name)
	require.Equal(t, replay.APIVersion, info.Version)
	require.Equal(t, "api-test-1", info.Metadata["node"])
	var subjects []string
	for _, ep := range info.Endpoints {
		subjects = append(subjects, ep.Subject)
	}
	for _, op := range events.DLQOps {
		want, err := events.APIDLQSubject(op)
		require.NoError(t, err)
		require.Contains(t, subjects, want)
	}

	env.fail(t, events.DLQOpGet, `{"id": "x"}`, 400)
	subj, err = micro.ControlSubject(micro.StatsVerb, events.DLQServiceName, "")
	require.NoError(t, err)
	// The service counts a request once its handler has returned, which
	// can be just after the answer reached us: read the stats until they
	// have caught up.
	var stats, gets int
	require.Eventually(t, func() bool {
		msg, err := env.nc.Request(subj, nil, 5*time.Second)
		require.NoError(t, err)
		var st micro.Stats
		require.NoError(t, json.Unmarshal(msg.Data, &st))
		for _, ep := range st.Endpoints {
			switch ep.Name {
			case "stats":
				stats = ep.NumRequests
			case "get":
				gets = ep.NumErrors
			}
		}
		return stats >= 1 && gets >= 1
	}, 5*time.Second, 10*time.Millisecond, "stats requests %d, get errors %d", stats, gets)
	require.Equal(t, 1, stats)
	require.Equal(t, 1, gets)

	subj, err = micro.ControlSubject(micro.PingVerb, events.DLQServiceName, "")
	require.NoError(t, err)
	_, err = env.nc.Request(subj, nil, 5*time.Second)
	require.NoError(t, err)
}

func TestAPIStartStop(t *testing.T) {
	t.Parallel()
	n := testenv.NATS(t)
	api := replay.NewAPI(n.Conn, nil, nil, replay.APIConfig{})
	require.ErrorIs(t, api.Stop(t.Context()), replay.ErrAPINotStarted)
	require.NoError(t, api.Start(t.Context()))
	require.ErrorIs(t, api.Start(t.Context()), replay.ErrAPIRunning)
	require.NotNil(t, api.Service())
	require.NoError(t, api.Stop(t.Context()))
	require.Nil(t, api.Service())
	_, err := n.Conn.Request("baldur.api.dlq.stats", nil, 200*time.Millisecond)
	require.ErrorIs(t, err, nats.ErrNoResponders)
}
