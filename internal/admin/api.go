package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/replay"
)

// maxBody is the largest request body the API reads.
const maxBody = 64 << 10

// ActorHeader names the actor of a write; DefaultActor when absent.
const ActorHeader = "X-Baldur-Actor"

// routes returns the server's mux.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/health", s.health)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /api/breakers", s.listBreakers)
	mux.HandleFunc("GET /api/breakers/{svc}", s.getBreaker)
	mux.HandleFunc("POST /api/breakers/{svc}/{action}", s.write(s.breakerAction))
	mux.HandleFunc("GET /api/governance", s.getGovernance)
	mux.HandleFunc("POST /api/governance/kill-switch", s.write(s.killSwitch))
	mux.HandleFunc("POST /api/governance/emergency", s.write(s.emergency))
	mux.HandleFunc("GET /api/dlq/stats", s.dlqStats)
	mux.HandleFunc("GET /api/dlq", s.dlqList)
	mux.HandleFunc("GET /api/dlq/{id}", s.dlqGet)
	mux.HandleFunc("POST /api/dlq/replay-batch", s.write(s.dlqReplayBatch))
	mux.HandleFunc("POST /api/dlq/{id}/{action}", s.write(s.dlqAction))
	mux.HandleFunc("GET /api/audit", s.auditList)
	mux.HandleFunc("GET /api/audit/verify", s.auditVerify)
	mux.HandleFunc("GET /api/events", s.sse)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no API route %s %s (see docs/admin-api.md)", r.Method, r.URL.Path))
	})
	mux.Handle("/", staticHandler())
	return securityHeaders(s.allowHosts(s.deadline(mux)))
}

// allowHosts answers 421 to a request whose Host header is not one of
// Config.AllowedHosts (any host when the list is empty). GET /api/health and
// GET /readyz, which tell nothing, answer any host: an orchestrator's probe
// names the pod's address.
func (s *Server) allowHosts(h http.Handler) http.Handler {
	if len(s.cfg.AllowedHosts) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/health" || r.URL.Path == "/readyz" {
			h.ServeHTTP(w, r)
			return
		}
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		// A browser always names the host; a request without one (HTTP/1.0,
		// a test client) is not a rebinding attack.
		if host != "" && !slices.ContainsFunc(s.cfg.AllowedHosts, func(a string) bool { return strings.EqualFold(a, host) }) {
			writeError(w, http.StatusMisdirectedRequest, fmt.Errorf("host %q is not served here (allowed: %s)",
				clipHost(r.Host), strings.Join(s.cfg.AllowedHosts, ", ")))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func clipHost(h string) string {
	if len(h) > 64 {
		return h[:64] + "…"
	}
	return h
}

// deadline bounds every request but the live stream by
// Config.RequestTimeout: its context ends then, and with it the fleet
// requests made for it, which the handler answers with 504.
func (s *Server) deadline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/events" {
			h.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// authorized reports whether r carries a token the server knows.
func (s *Server) authorized(r *http.Request) bool {
	_, ok := s.authorize(r)
	return ok
}

// unauthorized answers 401 (the token is wrong or missing) or 403 (the
// server has none) for what needs the token.
func (s *Server) unauthorized(w http.ResponseWriter, what string) {
	if !s.tokens() {
		writeError(w, http.StatusForbidden, fmt.Errorf("%s: this server has no admin token; start it with --admin-token (BALDUR_ADMIN_TOKEN) or --admin-operators-file", what))
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="baldur-admin"`)
	writeError(w, http.StatusUnauthorized, fmt.Errorf("%s need the admin token: send \"Authorization: Bearer <token>\"", what))
}

// securityHeaders sets the headers every answer carries: no sniffing, no
// framing, and a content security policy that allows only the server's own
// scripts, styles and connections.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		h.ServeHTTP(w, r)
	})
}

// errorBody is every error answer's JSON.
type errorBody struct {
	Error string `json:"error"`
	// Code is the fleet's refusal code of a refused command.
	Code string `json:"code,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		fmt.Fprintf(&buf, "{\"error\":%q}\n", "encoding the answer: "+err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, status int, err error) {
	body := errorBody{Error: err.Error()}
	var ref *opsclient.RefusedError
	if errors.As(err, &ref) {
		body.Code = ref.Code
	}
	writeJSON(w, status, body)
}

// fail answers an operator-client error with its status.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if status >= 500 {
		s.log.Warn("admin: request failed", "method", r.Method, "path", r.URL.Path, "status", status, "error", err.Error())
	}
	writeError(w, status, err)
}

// badRequest answers 400.
func badRequest(w http.ResponseWriter, format string, args ...any) {
	writeError(w, http.StatusBadRequest, fmt.Errorf(format, args...))
}

// write wraps a write handler: it needs the admin token as a bearer token.
func (s *Server) write(h func(w http.ResponseWriter, r *http.Request, actor string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		who, ok := s.authorize(r)
		if !ok {
			s.unauthorized(w, "writes")
			return
		}
		actor := strings.TrimSpace(r.Header.Get(ActorHeader))
		switch {
		case who.named:
			// The operator's own token names them: the header cannot
			// speak for someone else.
			actor = who.name
		case actor == "":
			actor = DefaultActor
		}
		if len(actor) > events.MaxActorLen {
			badRequest(w, "header %s is %d bytes long; at most %d are allowed", ActorHeader, len(actor), events.MaxActorLen)
			return
		}
		h(w, r, actor)
	}
}

// decode reads r's JSON body into v strictly: unknown fields, trailing data
// and bodies over maxBody are refused. An empty body leaves v as it is when
// emptyOK.
func decode(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", maxBody))
			return false
		}
		badRequest(w, "reading the request body: %v", err)
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if emptyOK {
			return true
		}
		badRequest(w, "a JSON request body is required")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		badRequest(w, "invalid JSON body: %v", err)
		return false
	}
	if dec.More() {
		badRequest(w, "invalid JSON body: data after the JSON object")
		return false
	}
	return true
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// BreakerList is the answer of GET /api/breakers.
type BreakerList struct {
	Breakers []BreakerSummary `json:"breakers"`
}

func (s *Server) listBreakers(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, BreakerList{Breakers: s.live.snapshot().Breakers})
}

// BreakerState is the answer of GET /api/breakers/{svc}: the full state and
// its KV revision.
type BreakerState struct {
	Breaker  domain.Breaker `json:"breaker"`
	Revision uint64         `json:"revision"`
}

func (s *Server) getBreaker(w http.ResponseWriter, r *http.Request) {
	svc := r.PathValue("svc")
	if err := events.ValidateServiceName(svc); err != nil {
		badRequest(w, "%v", err)
		return
	}
	b, rev, err := s.deps.Operator.Breaker(r.Context(), svc)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, BreakerState{Breaker: b, Revision: rev})
}

// BreakerActionRequest is the body of POST /api/breakers/{svc}/{action}.
// Reason is required for every action; the other fields apply to the
// actions the contract allows them on.
type BreakerActionRequest struct {
	Reason string `json:"reason"`
	// TTL bounds open, close and override ("30m").
	TTL domain.Duration `json:"ttl,omitempty"`
	// TriggerReplay asks a close to replay the service's dead letters.
	TriggerReplay bool `json:"trigger_replay,omitempty"`
	// OverrideKillSwitch lets the action through while the kill switch is
	// on.
	OverrideKillSwitch bool `json:"override_kill_switch,omitempty"`
	// Override holds the thresholds of the override action.
	Override *domain.ThresholdOverride `json:"override,omitempty"`
}

func (s *Server) breakerAction(w http.ResponseWriter, r *http.Request, actor string) {
	svc, verb := r.PathValue("svc"), r.PathValue("action")
	if err := events.ValidateServiceName(svc); err != nil {
		badRequest(w, "%v", err)
		return
	}
	action, ok := opsclient.ActionFor(verb)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown breaker action %q: want open, close, auto, disable, metrics-only, override or clear-override", verb))
		return
	}
	var req BreakerActionRequest
	if !decode(w, r, &req, false) {
		return
	}
	cmd := events.BreakerCommand{Action: action, Actor: actor, Reason: req.Reason, TTL: req.TTL,
		TriggerReplay: req.TriggerReplay, OverrideKillSwitch: req.OverrideKillSwitch, Override: req.Override}
	if err := cmd.Validate(); err != nil {
		badRequest(w, "%v", err)
		return
	}
	res, err := s.deps.Operator.BreakerCommand(r.Context(), svc, cmd)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) getGovernance(w http.ResponseWriter, r *http.Request) {
	g, err := s.deps.Operator.GovernanceState(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

// KillSwitchRequest is the body of POST /api/governance/kill-switch.
type KillSwitchRequest struct {
	On     *bool  `json:"on"`
	Reason string `json:"reason"`
}

func (s *Server) killSwitch(w http.ResponseWriter, r *http.Request, actor string) {
	var req KillSwitchRequest
	if !decode(w, r, &req, false) {
		return
	}
	if req.On == nil {
		badRequest(w, "field \"on\" is required (true or false)")
		return
	}
	cmd := events.GovernanceCommand{Action: events.ActionKillSwitchOff, Actor: actor, Reason: req.Reason}
	if *req.On {
		cmd.Action = events.ActionKillSwitchOn
	}
	s.govern(w, r, cmd)
}

// EmergencyRequest is the body of POST /api/governance/emergency.
type EmergencyRequest struct {
	Level  *domain.EmergencyLevel `json:"level"`
	Reason string                 `json:"reason"`
}

func (s *Server) emergency(w http.ResponseWriter, r *http.Request, actor string) {
	var req EmergencyRequest
	if !decode(w, r, &req, false) {
		return
	}
	if req.Level == nil {
		badRequest(w, "field \"level\" is required (0 normal, 1 elevated, 2 high, 3 critical)")
		return
	}
	s.govern(w, r, events.GovernanceCommand{Action: events.ActionSetEmergencyLevel, Level: req.Level, Actor: actor, Reason: req.Reason})
}

func (s *Server) govern(w http.ResponseWriter, r *http.Request, cmd events.GovernanceCommand) {
	if err := cmd.Validate(); err != nil {
		badRequest(w, "%v", err)
		return
	}
	res, err := s.deps.Operator.Governance(r.Context(), cmd)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// dlqStats serves GET /api/dlq/stats: one page of the DLQ endpoint's stats,
// with the query parameters service, after and limit.
func (s *Server) dlqStats(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var req replay.DLQStatsRequest
	for k := range q {
		switch k {
		case "service", "after", "limit":
		default:
			badRequest(w, "unknown query parameter %q (want service, after, limit)", k)
			return
		}
	}
	req.Service, req.After = q.Get("service"), q.Get("after")
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > replay.MaxStatsLimit {
			badRequest(w, "query parameter limit is %q; want 1..%d", v, replay.MaxStatsLimit)
			return
		}
		req.Limit = n
	}
	var st replay.DLQStatsReply
	if err := s.deps.Operator.DLQ(r.Context(), events.DLQOpStats, req, &st); err != nil {
		s.fail(w, r, err)
		return
	}
	if st.Counts == nil {
		st.Counts = map[string]map[domain.DLQStatus]int64{}
	}
	writeJSON(w, http.StatusOK, st)
}

// dlqQuery is the filter of GET /api/dlq: the query parameters service,
// status (comma-separated), domain, failure_type, older_than, newer_than,
// created_after, created_before, limit and cursor.
func dlqQuery(r *http.Request) (replay.DLQListRequest, error) {
	q := r.URL.Query()
	known := map[string]bool{"service": true, "status": true, "domain": true, "failure_type": true,
		"older_than": true, "newer_than": true, "created_after": true, "created_before": true, "limit": true, "cursor": true}
	for k := range q {
		if !known[k] {
			return replay.DLQListRequest{}, fmt.Errorf("unknown query parameter %q", k)
		}
	}
	var req replay.DLQListRequest
	req.Service = q.Get("service")
	for st := range strings.SplitSeq(q.Get("status"), ",") {
		if st = strings.TrimSpace(st); st != "" {
			req.Status = append(req.Status, domain.DLQStatus(st))
		}
	}
	req.Domain = domain.FailureDomain(q.Get("domain"))
	req.FailureType = q.Get("failure_type")
	req.Cursor = q.Get("cursor")
	for _, p := range []struct {
		name string
		dst  *domain.Duration
	}{{"older_than", &req.OlderThan}, {"newer_than", &req.NewerThan}} {
		if v := q.Get(p.name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return req, fmt.Errorf("query parameter %s is %q; want a duration such as 90m", p.name, v)
			}
			*p.dst = domain.Duration(d)
		}
	}
	for _, p := range []struct {
		name string
		dst  interface{ UnmarshalText([]byte) error }
	}{{"created_after", &req.CreatedAfter}, {"created_before", &req.CreatedBefore}} {
		if v := q.Get(p.name); v != "" {
			if err := p.dst.UnmarshalText([]byte(v)); err != nil {
				return req, fmt.Errorf("query parameter %s: want an RFC 3339 time: %w", p.name, err)
			}
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return req, fmt.Errorf("query parameter limit is %q; want 1..1000", v)
		}
		req.Limit = n
	}
	return req, nil
}

func (s *Server) dlqList(w http.ResponseWriter, r *http.Request) {
	req, err := dlqQuery(r)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	var res replay.DLQListReply
	if err := s.deps.Operator.DLQ(r.Context(), events.DLQOpList, req, &res); err != nil {
		s.fail(w, r, err)
		return
	}
	if res.Entries == nil {
		res.Entries = []replay.DLQEntryReply{}
	}
	if !s.authorized(r) {
		for i := range res.Entries {
			redact(&res.Entries[i])
		}
	}
	writeJSON(w, http.StatusOK, res)
}

// redact removes what only the token may read of an entry: the failed
// call's body and metadata.
func redact(e *replay.DLQEntryReply) {
	if len(e.Request) > 0 || len(e.Metadata) > 0 {
		e.Request, e.Metadata, e.Redacted = nil, nil, true
	}
}

func (s *Server) dlqGet(w http.ResponseWriter, r *http.Request) {
	var res replay.DLQEntryReply
	if err := s.deps.Operator.DLQ(r.Context(), events.DLQOpGet, replay.DLQGetRequest{ID: r.PathValue("id")}, &res); err != nil {
		s.fail(w, r, err)
		return
	}
	if !s.authorized(r) {
		redact(&res)
	}
	writeJSON(w, http.StatusOK, res)
}

// DLQActionRequest is the body of POST /api/dlq/{id}/{action}. Note is the
// resolution note of discard and resolve (the reason when empty).
type DLQActionRequest struct {
	Reason string `json:"reason"`
	Note   string `json:"note,omitempty"`
}

func (s *Server) dlqAction(w http.ResponseWriter, r *http.Request, actor string) {
	id, action := r.PathValue("id"), r.PathValue("action")
	switch action {
	case "replay", "requeue", "discard", "resolve":
	default:
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown dead-letter action %q: want replay, requeue, discard or resolve", action))
		return
	}
	var req DLQActionRequest
	if !decode(w, r, &req, false) {
		return
	}
	if strings.TrimSpace(req.Reason) == "" {
		badRequest(w, "field \"reason\" is required")
		return
	}
	if req.Note != "" && (action == "replay" || action == "requeue") {
		badRequest(w, "field \"note\" is given for %s; only discard and resolve take a note", action)
		return
	}
	var (
		req2 any
		res  any
		op   events.DLQOp
	)
	switch action {
	case "replay":
		op, req2, res = events.DLQOpReplay, replay.DLQReplayRequest{ID: id, Actor: actor, Reason: req.Reason}, &replay.DLQReplayReply{}
	case "requeue":
		op, req2, res = events.DLQOpRequeue, replay.DLQRequeueRequest{ID: id, Actor: actor, Reason: req.Reason}, &replay.DLQEntryReply{}
	case "discard":
		op, req2, res = events.DLQOpDiscard, replay.DLQCloseRequest{ID: id, Actor: actor, Reason: req.Reason, Note: req.Note}, &replay.DLQEntryReply{}
	default:
		op, req2, res = events.DLQOpResolve, replay.DLQCloseRequest{ID: id, Actor: actor, Reason: req.Reason, Note: req.Note}, &replay.DLQEntryReply{}
	}
	if err := s.deps.Operator.DLQ(r.Context(), op, req2, res); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// ReplayBatchRequest is the body of POST /api/dlq/replay-batch: the filter
// of GET /api/dlq as JSON fields, dry_run, limit and reason.
type ReplayBatchRequest struct {
	replay.DLQFilter
	DryRun bool   `json:"dry_run"`
	Limit  int    `json:"limit,omitempty"`
	Reason string `json:"reason"`
}

func (s *Server) dlqReplayBatch(w http.ResponseWriter, r *http.Request, actor string) {
	var req ReplayBatchRequest
	if !decode(w, r, &req, false) {
		return
	}
	if strings.TrimSpace(req.Reason) == "" {
		badRequest(w, "field \"reason\" is required")
		return
	}
	var res replay.DLQReplayBatchReply
	if err := s.deps.Operator.DLQ(r.Context(), events.DLQOpReplayBatch, replay.DLQReplayBatchRequest{
		DLQFilter: req.DLQFilter, DryRun: req.DryRun, Limit: req.Limit, Actor: actor, Reason: req.Reason}, &res); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// AuditList is the answer of GET /api/audit.
type AuditList struct {
	Records []domain.AuditRecord `json:"records"`
	// NextAfter is the after parameter of the next page; absent on the
	// last.
	NextAfter int64 `json:"next_after,omitempty"`
}

func (s *Server) auditList(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.unauthorized(w, "audit records")
		return
	}
	q := r.URL.Query()
	for k := range q {
		if k != "subject" && k != "after" && k != "limit" {
			badRequest(w, "unknown query parameter %q (want subject, after, limit)", k)
			return
		}
	}
	limit, after := 100, int64(0)
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			badRequest(w, "query parameter limit is %q; want 1..1000", v)
			return
		}
		limit = n
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			badRequest(w, "query parameter after is %q; want a sequence number ≥ 0", v)
			return
		}
		after = n
	}
	recs, err := s.deps.Operator.AuditList(r.Context(), opsclient.AuditQuery{Subject: q.Get("subject"), AfterSeq: after, Limit: limit})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := AuditList{Records: recs}
	if out.Records == nil {
		out.Records = []domain.AuditRecord{}
	}
	if len(recs) == limit {
		out.NextAfter = recs[len(recs)-1].Seq
	}
	writeJSON(w, http.StatusOK, out)
}

// AuditVerified is the body of GET /api/audit/verify on an intact log: what
// was verified, the records and the anchored heads.
type AuditVerified struct {
	// Intact is true.
	Intact bool `json:"intact"`
	opsclient.AuditVerification
}

func (s *Server) auditVerify(w http.ResponseWriter, r *http.Request) {
	v, err := s.deps.Operator.AuditVerify(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, AuditVerified{Intact: true, AuditVerification: v})
}
