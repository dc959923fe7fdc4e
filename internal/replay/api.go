package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/store"
)

// Settings of the DLQ endpoints.
const (
	// APIVersion is the version the baldur-dlq micro service announces.
	APIVersion = "1.0.0"
	// MaxAPIRequest bounds a request body.
	MaxAPIRequest = 64 << 10
	// DefaultReplayBatchLimit is replay_batch's limit when the request gives
	// none (the seed's max_items).
	DefaultReplayBatchLimit = 100
	// MaxReplayBatchLimit bounds replay_batch's limit.
	MaxReplayBatchLimit = store.MaxListLimit
	// DefaultAPIRequestTimeout bounds the handling of one request; replays
	// take as long as their deliveries.
	DefaultAPIRequestTimeout = 2 * time.Minute
)

// Audit actions of the DLQ endpoints that the store does not write itself.
// Requeue, discard and resolve are audited by the store in the transaction
// that applies them (store.AuditDLQRequeue, store.AuditDLQClose).
const (
	// AuditDLQReplay records an operator's replay of one entry; subject
	// "dlq:<id>".
	AuditDLQReplay = "dlq.replay"
	// AuditDLQReplayBatch records an operator's filtered replay; subject
	// "dlq:batch", the filter and the count in the details.
	AuditDLQReplayBatch = "dlq.replay_batch"
)

// replayableStatuses are the statuses an operator may replay from: the
// engine claims an entry from pending, requires_review or reviewing.
var replayableStatuses = []domain.DLQStatus{domain.DLQPending, domain.DLQRequiresReview, domain.DLQReviewing}

// APIStore is what the DLQ endpoints need of the store (*store.Store).
type APIStore interface {
	List(ctx context.Context, f store.ListFilter) (store.Page, error)
	Count(ctx context.Context, f store.ListFilter) (int64, error)
	Get(ctx context.Context, id string) (domain.DLQEntry, error)
	Requeue(ctx context.Context, id string, c store.Change) (domain.DLQEntry, error)
	Close(ctx context.Context, id string, to domain.DLQStatus, note string, c store.Change) (domain.DLQEntry, error)
	Counts(ctx context.Context) (map[string]map[domain.DLQStatus]int64, error)
	AppendAudit(ctx context.Context, r domain.AuditRecord) (domain.AuditRecord, error)
}

// Replayer replays chosen entries of one service now, on an operator's
// request: under the service's lease and within governance, like a drain,
// but only the given entries (pending, requires_review or reviewing). The
// replay engine implements it; the Worker wires it into the API.
type Replayer interface {
	ReplayEntries(ctx context.Context, svc string, ids []string, opts ReplayOptions) (ReplayResult, error)
	// Gate says whether a replay of svc would start now: "" when it would,
	// else why not (StopGovernance with the gate's reason, StopBreakerOpen),
	// without publishing or auditing anything. For dry runs.
	Gate(svc string) (StopReason, string)
}

// APIConfig configures the DLQ endpoints. Zero fields take their defaults.
type APIConfig struct {
	// Node is this worker's id, announced in the service's metadata.
	Node string
	// RequestTimeout bounds the handling of one request;
	// DefaultAPIRequestTimeout when zero.
	RequestTimeout time.Duration
	// Now is the clock (ages in filters, audit times); time.Now when nil.
	Now func() time.Time
	// Logger receives a line per request answered with a 500; slog.Default
	// when nil.
	Logger *slog.Logger
}

// API serves the DLQ endpoints as the NATS micro service baldur-dlq
// (events.DLQServiceName): baldur.api.dlq.<op> for every events.DLQOps, JSON
// in and out, bodies decoded strictly. Errors carry the micro error headers
// (Nats-Service-Error, Nats-Service-Error-Code: 400, 404, 409, 500, 503) and
// the body {"error": "..."}. Every replay-worker runs one; the endpoints
// share micro's queue group, so each request is answered once.
type API struct {
	nc       *nats.Conn
	store    APIStore
	replayer Replayer
	cfg      APIConfig
	log      *slog.Logger

	mu     sync.Mutex
	svc    micro.Service
	cancel context.CancelFunc
}

// NewAPI returns the DLQ endpoints over st, replaying with r (nil answers
// replay requests with 503), served on nc once started.
func NewAPI(nc *nats.Conn, st APIStore, r Replayer, cfg APIConfig) *API {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultAPIRequestTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &API{nc: nc, store: st, replayer: r, cfg: cfg, log: log.With(slog.String("component", "dlq-api"))}
}

// Start registers the micro service and its endpoints on the connection.
// Requests are handled until Stop; ctx's values (not its cancellation) are
// passed to the handlers.
func (a *API) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.svc != nil {
		return ErrAPIRunning
	}
	md := map[string]string{}
	if a.cfg.Node != "" {
		md["node"] = a.cfg.Node
	}
	svc, err := micro.AddService(a.nc, micro.Config{
		Name:        events.DLQServiceName,
		Version:     APIVersion,
		Description: "Baldur dead-letter queue: list, get, replay, replay_batch, requeue, discard, resolve, stats",
		Metadata:    md,
	})
	if err != nil {
		return fmt.Errorf("replay: start the %s micro service: %w", events.DLQServiceName, err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	handlers := map[events.DLQOp]func(context.Context, []byte) (any, error){
		events.DLQOpList:        a.list,
		events.DLQOpGet:         a.get,
		events.DLQOpReplay:      a.replayOne,
		events.DLQOpReplayBatch: a.replayBatch,
		events.DLQOpRequeue:     a.requeue,
		events.DLQOpDiscard:     a.discard,
		events.DLQOpResolve:     a.resolve,
		events.DLQOpStats:       a.stats,
	}
	g := svc.AddGroup(events.DLQEndpointGroup)
	for _, op := range events.DLQOps {
		h := handlers[op]
		err := g.AddEndpoint(string(op), micro.ContextHandler(runCtx, func(ctx context.Context, req micro.Request) {
			a.serve(ctx, op, req, h)
		}), micro.WithEndpointMetadata(map[string]string{"format": "application/json"}))
		if err != nil {
			cancel()
			_ = svc.Stop()
			return fmt.Errorf("replay: add DLQ endpoint %s: %w", op, err)
		}
	}
	a.svc, a.cancel = svc, cancel
	return nil
}

// Stop unregisters the service: requests in flight are cancelled, new ones
// find no responder here.
func (a *API) Stop(ctx context.Context) error {
	a.mu.Lock()
	svc, cancel := a.svc, a.cancel
	a.svc, a.cancel = nil, nil
	a.mu.Unlock()
	if svc == nil {
		return ErrAPINotStarted
	}
	cancel()
	if err := svc.Stop(); err != nil {
		return fmt.Errorf("replay: stop the %s micro service: %w", events.DLQServiceName, err)
	}
	return ctx.Err()
}

// Service returns the running micro service (for its Info and Stats), or
// nil before Start and after Stop.
func (a *API) Service() micro.Service {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.svc
}

// serve runs one handler and answers: its reply as JSON, or a micro error.
// A panic in a handler is answered as a 500, never a crash.
func (a *API) serve(ctx context.Context, op events.DLQOp, req micro.Request, h func(context.Context, []byte) (any, error)) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	var (
		reply any
		err   error
	)
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("internal error: %v", p)
			}
		}()
		if len(req.Data()) > MaxAPIRequest {
			err = fmt.Errorf("%w: the body is %d bytes, at most %d are allowed", ErrBadRequest, len(req.Data()), MaxAPIRequest)
			return
		}
		reply, err = h(ctx, req.Data())
	}()
	if err == nil {
		var body []byte
		if body, err = json.Marshal(reply); err == nil {
			if rerr := req.Respond(body); rerr != nil {
				a.log.WarnContext(ctx, "respond", slog.String("op", string(op)), slog.String("error", rerr.Error()))
			}
			return
		}
	}
	code := ErrorStatus(err)
	if code == 500 {
		a.log.ErrorContext(ctx, "DLQ request failed", slog.String("op", string(op)), slog.Int("code", code), slog.String("error", err.Error()))
	}
	msg := err.Error()
	body, _ := json.Marshal(ErrorReply{Error: msg})
	// The header carries the message on one line.
	desc := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, msg)
	if rerr := req.Error(strconv.Itoa(code), desc, body); rerr != nil {
		a.log.WarnContext(ctx, "respond with error", slog.String("op", string(op)), slog.String("error", rerr.Error()))
	}
}

// ErrorStatus returns the status code an endpoint answers err with: 400 for
// a bad request or argument, 404 for an entry not found, 409 for a status
// change the entry cannot take, 503 when replay is unavailable, 500
// otherwise.
func ErrorStatus(err error) int {
	switch {
	case errors.Is(err, ErrBadRequest), errors.Is(err, store.ErrInvalidArgument):
		return 400
	case errors.Is(err, store.ErrNotFound):
		return 404
	case errors.Is(err, ErrEntryConflict), errors.Is(err, store.ErrInvalidTransition):
		return 409
	case errors.Is(err, ErrReplayUnavailable):
		return 503
	}
	return 500
}

// ErrorReply is the body of every error answer.
type ErrorReply struct {
	Error string `json:"error"`
}

// StatusList is one status or a list of statuses: "status": "pending" and
// "status": ["pending", "requires_review"] both decode.
type StatusList []domain.DLQStatus

// UnmarshalJSON accepts a string or an array of strings.
func (l *StatusList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s domain.DLQStatus
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = StatusList{s}
		return nil
	}
	var ss []domain.DLQStatus
	if err := json.Unmarshal(b, &ss); err != nil {
		return errors.New("want a status or a list of statuses")
	}
	*l = ss
	return nil
}

// DLQFilter selects entries in list and replay_batch. Zero fields do not
// filter. An age (older_than, newer_than) is relative to the time the
// request is handled; give it or the matching absolute bound, not both.
type DLQFilter struct {
	Service     string               `json:"service,omitempty"`
	Status      StatusList           `json:"status,omitempty"`
	Domain      domain.FailureDomain `json:"domain,omitempty"`
	FailureType string               `json:"failure_type,omitempty"`
	// CreatedAfter keeps entries created at or after it (RFC 3339).
	CreatedAfter time.Time `json:"created_after,omitzero"`
	// CreatedBefore keeps entries created before it (RFC 3339).
	CreatedBefore time.Time `json:"created_before,omitzero"`
	// OlderThan keeps entries older than this age ("1h"): created before
	// now minus it.
	OlderThan domain.Duration `json:"older_than,omitempty"`
	// NewerThan keeps entries at most this old ("30m").
	NewerThan domain.Duration `json:"newer_than,omitempty"`
}

// storeFilter checks f and returns it as the store's filter.
func (f DLQFilter) storeFilter(now time.Time) (store.ListFilter, error) {
	out := store.ListFilter{
		Service: f.Service, Statuses: f.Status, Domain: f.Domain, FailureType: f.FailureType,
		CreatedAfter: f.CreatedAfter, CreatedBefore: f.CreatedBefore,
	}
	if f.Service != "" {
		if err := events.ValidateServiceName(f.Service); err != nil {
			return out, fmt.Errorf("%w: field \"service\": %w", ErrBadRequest, err)
		}
	}
	for _, st := range f.Status {
		if !st.Valid() {
			return out, fmt.Errorf("%w: field \"status\": unknown status %q (want one of %s)", ErrBadRequest, st, joinStatuses(domain.DLQStatuses))
		}
	}
	if f.Domain != "" && !f.Domain.Valid() {
		return out, fmt.Errorf("%w: field \"domain\": unknown domain %q (want one of %s)", ErrBadRequest, f.Domain, joinStrings(domain.FailureDomains))
	}
	if err := checkAPIText("failure_type", f.FailureType, 64, false); err != nil {
		return out, err
	}
	switch {
	case f.OlderThan < 0:
		return out, fmt.Errorf("%w: field \"older_than\" is negative", ErrBadRequest)
	case f.NewerThan < 0:
		return out, fmt.Errorf("%w: field \"newer_than\" is negative", ErrBadRequest)
	case f.OlderThan > 0 && !f.CreatedBefore.IsZero():
		return out, fmt.Errorf("%w: give \"older_than\" or \"created_before\", not both", ErrBadRequest)
	case f.NewerThan > 0 && !f.CreatedAfter.IsZero():
		return out, fmt.Errorf("%w: give \"newer_than\" or \"created_after\", not both", ErrBadRequest)
	}
	if f.OlderThan > 0 {
		out.CreatedBefore = now.Add(-f.OlderThan.D())
	}
	if f.NewerThan > 0 {
		out.CreatedAfter = now.Add(-f.NewerThan.D())
	}
	if !out.CreatedAfter.IsZero() && !out.CreatedBefore.IsZero() && !out.CreatedAfter.Before(out.CreatedBefore) {
		return out, fmt.Errorf("%w: the created-after bound %s is not before the created-before bound %s",
			ErrBadRequest, out.CreatedAfter.Format(time.RFC3339), out.CreatedBefore.Format(time.RFC3339))
	}
	return out, nil
}

// DLQListRequest is the body of baldur.api.dlq.list: a filter and a page.
type DLQListRequest struct {
	DLQFilter
	// Limit is the page size: 100 when zero, at most 1000. A page is cut
	// shorter when its entries would not fit one NATS message.
	Limit int `json:"limit,omitempty"`
	// Cursor continues a listing from a reply's next_cursor.
	Cursor string `json:"cursor,omitempty"`
}

// DLQListReply answers list: entries oldest first (without their request
// bodies and error histories; get shows them), and the cursor of the next
// page, absent on the last.
type DLQListReply struct {
	Entries    []DLQEntryReply `json:"entries"`
	NextCursor string          `json:"next_cursor,omitempty"`
}

// DLQEntryReply is an entry as the endpoints answer it: domain.DLQEntry's
// JSON, with last_error always present. Before the first replay attempt
// last_error is the dead letter's error_message, the failure that put it in
// the queue.
type DLQEntryReply struct {
	domain.DLQEntry
	LastError string `json:"last_error"`
	// Redacted is set by the admin HTTP API when it withheld request and
	// metadata from a reader without the admin token.
	Redacted bool `json:"redacted,omitempty"`
}

func entryReply(e domain.DLQEntry) DLQEntryReply {
	last := e.LastError
	if last == "" {
		last = e.ErrorMessage
	}
	return DLQEntryReply{DLQEntry: e, LastError: last}
}

// DLQGetRequest is the body of baldur.api.dlq.get; the reply is a
// DLQEntryReply.
type DLQGetRequest struct {
	ID string `json:"id"`
}

// DLQReplayRequest is the body of baldur.api.dlq.replay: replay one entry
// now. Actor and reason are required.
type DLQReplayRequest struct {
	ID     string `json:"id"`
	Actor  string `json:"actor"`
	Reason string `json:"reason"`
}

// ReplaySummary is a drain's result as the endpoints answer it (the seed's
// BatchReplayResult).
type ReplaySummary struct {
	Service               string `json:"service"`
	Total                 int    `json:"total"`
	SuccessCount          int    `json:"success_count"`
	FailedCount           int    `json:"failed_count"`
	SkippedCount          int    `json:"skipped_count"`
	EscalatedCount        int    `json:"escalated_count"`
	GovernanceBlocked     bool   `json:"governance_blocked"`
	GovernanceBlockReason string `json:"governance_block_reason,omitempty"`
	InflightSkipped       bool   `json:"inflight_skipped"`
	// Stop says why the replay ended (drained, governance_blocked,
	// breaker_not_closed, no_responders, inflight, ...).
	Stop string `json:"stop"`
}

func summarize(svc string, r ReplayResult) ReplaySummary {
	return ReplaySummary{
		Service: svc, Total: r.Total, SuccessCount: r.Success, FailedCount: r.Failed,
		SkippedCount: r.Skipped, EscalatedCount: r.Escalated, GovernanceBlocked: r.GovernanceBlocked,
		GovernanceBlockReason: r.GovernanceBlockReason, InflightSkipped: r.InflightSkipped, Stop: string(r.Stop),
	}
}

// DLQReplayReply answers replay: the entry after the attempt and the
// replay's summary. A replay that governance blocked, or that another
// worker's drain of the service pre-empted, is a normal reply whose summary
// says so; the entry is then unchanged.
type DLQReplayReply struct {
	Entry  DLQEntryReply `json:"entry"`
	Result ReplaySummary `json:"result"`
}

// DLQReplayBatchRequest is the body of baldur.api.dlq.replay_batch: replay
// the entries the filter selects (status pending when the filter names
// none; only pending, requires_review and reviewing may be named), oldest
// first, at most limit of them. With dry_run nothing is replayed and the
// reply counts what would be. Actor and reason are required, also for a dry
// run.
type DLQReplayBatchRequest struct {
	DLQFilter
	DryRun bool   `json:"dry_run"`
	Limit  int    `json:"limit,omitempty"`
	Actor  string `json:"actor"`
	Reason string `json:"reason"`
}

// DLQReplayBatchReply answers replay_batch. Matched is how many entries the
// filter selects; Count is how many were (or, in a dry run, would be)
// replayed: Matched capped at the limit. Results has one summary per
// service replayed.
type DLQReplayBatchReply struct {
	DryRun  bool  `json:"dry_run"`
	Matched int64 `json:"matched"`
	// Count is how many entries were selected (at most the limit).
	Count int `json:"count"`
	// Replayed is how many of them were replayed with success: the sum of
	// the results' success_count (0 in a dry run).
	Replayed int `json:"replayed"`
	// Blocked is how many selected entries governance or an open breaker
	// kept from being replayed (in a dry run: would keep).
	Blocked int `json:"blocked"`
	// Results are per service; in a dry run, what would happen: total and,
	// when the replay would not start, governance_blocked or stop.
	Results []ReplaySummary `json:"results,omitempty"`
}

// DLQRequeueRequest is the body of baldur.api.dlq.requeue: put an entry
// that requires review (or is being reviewed) back to pending with a fresh
// set of attempts. The reply is the entry after.
type DLQRequeueRequest struct {
	ID     string `json:"id"`
	Actor  string `json:"actor"`
	Reason string `json:"reason"`
}

// DLQCloseRequest is the body of baldur.api.dlq.discard (the entry becomes
// rejected) and baldur.api.dlq.resolve (resolved, a manual fix). Note is the
// resolution note; the reason when empty. The reply is the entry after.
type DLQCloseRequest struct {
	ID     string `json:"id"`
	Actor  string `json:"actor"`
	Reason string `json:"reason"`
	Note   string `json:"note,omitempty"`
}

// Page sizes of stats.
const (
	// DefaultStatsLimit is how many services one stats reply counts when the
	// request names no limit.
	DefaultStatsLimit = 1000
	// MaxStatsLimit bounds a stats request's limit: a page of that many
	// services stays far below NATS's payload limit.
	MaxStatsLimit = 5000
)

// DLQStatsReply answers baldur.api.dlq.stats: the number of entries per
// service and status for one page of services (in name order), the totals
// of every service, and where the next page starts.
type DLQStatsReply struct {
	// Counts are this page's services.
	Counts map[string]map[domain.DLQStatus]int64 `json:"counts"`
	// Totals count the entries of every service (of the one named by the
	// request's service), by status.
	Totals map[domain.DLQStatus]int64 `json:"totals"`
	// Services is the number of services with entries (1 or 0 with a
	// service filter).
	Services int `json:"services"`
	// Next is the after of the next page; empty on the last page.
	Next string `json:"next,omitempty"`
}

// DLQStatsRequest is the body of stats; every field is optional (an empty
// body is the first page of every service).
type DLQStatsRequest struct {
	// Service counts only that service.
	Service string `json:"service,omitempty"`
	// After starts the page after this service name (a reply's next).
	After string `json:"after,omitempty"`
	// Limit is the page's size, 1..MaxStatsLimit; DefaultStatsLimit when 0.
	Limit int `json:"limit,omitempty"`
}

func (a *API) list(ctx context.Context, body []byte) (any, error) {
	var req DLQListRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	f, err := req.storeFilter(a.cfg.Now())
	if err != nil {
		return nil, err
	}
	if req.Limit < 0 || req.Limit > store.MaxListLimit {
		return nil, fmt.Errorf("%w: field \"limit\" is %d; want 1..%d", ErrBadRequest, req.Limit, store.MaxListLimit)
	}
	if err := checkAPIText("cursor", req.Cursor, 256, false); err != nil {
		return nil, err
	}
	f.Limit, f.Cursor = req.Limit, req.Cursor
	if f.Limit == 0 {
		f.Limit = store.DefaultListLimit
	}
	maxBody := int(a.nc.MaxPayload()) - 1024
	for {
		page, err := a.store.List(ctx, f)
		if err != nil {
			return nil, err
		}
		reply := DLQListReply{Entries: make([]DLQEntryReply, len(page.Entries)), NextCursor: page.NextCursor}
		size := 64
		for i, e := range page.Entries {
			e.Request, e.ErrorHistory = nil, nil
			reply.Entries[i] = entryReply(e)
			size += len(e.Metadata) + len(e.LastError) + len(e.ErrorMessage) + 1024
		}
		if size <= maxBody || f.Limit == 1 {
			return reply, nil
		}
		// Too large for one message: ask for a shorter page.
		f.Limit = max(1, f.Limit/2)
	}
}

func (a *API) get(ctx context.Context, body []byte) (any, error) {
	var req DLQGetRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	id, err := checkID(req.ID)
	if err != nil {
		return nil, err
	}
	e, err := a.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return entryReply(e), nil
}

func (a *API) replayOne(ctx context.Context, body []byte) (any, error) {
	var req DLQReplayRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	id, err := checkID(req.ID)
	if err != nil {
		return nil, err
	}
	if err := checkActorReason(req.Actor, req.Reason); err != nil {
		return nil, err
	}
	if a.replayer == nil {
		return nil, ErrReplayUnavailable
	}
	e, err := a.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(replayableStatuses, e.Status) {
		return nil, fmt.Errorf("%w: entry %s is %s; only %s entries can be replayed", ErrEntryConflict, id, e.Status, joinStatuses(replayableStatuses))
	}
	details, err := json.Marshal(map[string]any{"service": e.Service, "status": e.Status})
	if err != nil {
		return nil, err
	}
	if _, err := a.store.AppendAudit(ctx, domain.AuditRecord{
		At: a.cfg.Now(), Actor: req.Actor, Action: AuditDLQReplay, Subject: "dlq:" + id, Reason: req.Reason, Details: details,
	}); err != nil {
		return nil, err
	}
	res, err := a.replayer.ReplayEntries(ctx, e.Service, []string{id}, ReplayOptions{Trigger: events.BatchTriggerOperator, Actor: req.Actor})
	if err != nil {
		return nil, fmt.Errorf("replay entry %s of %s: %w", id, e.Service, err)
	}
	after, err := a.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return DLQReplayReply{Entry: entryReply(after), Result: summarize(e.Service, res)}, nil
}

func (a *API) replayBatch(ctx context.Context, body []byte) (any, error) {
	var req DLQReplayBatchRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	if err := checkActorReason(req.Actor, req.Reason); err != nil {
		return nil, err
	}
	if len(req.Status) == 0 {
		req.Status = StatusList{domain.DLQPending}
	}
	for _, st := range req.Status {
		if st.Valid() && !slices.Contains(replayableStatuses, st) {
			return nil, fmt.Errorf("%w: field \"status\": %s entries cannot be replayed (want %s)", ErrBadRequest, st, joinStatuses(replayableStatuses))
		}
	}
	f, err := req.storeFilter(a.cfg.Now())
	if err != nil {
		return nil, err
	}
	limit := req.Limit
	switch {
	case limit == 0:
		limit = DefaultReplayBatchLimit
	case limit < 0 || limit > MaxReplayBatchLimit:
		return nil, fmt.Errorf("%w: field \"limit\" is %d; want 1..%d", ErrBadRequest, limit, MaxReplayBatchLimit)
	}
	matched, err := a.store.Count(ctx, f)
	if err != nil {
		return nil, err
	}
	reply := DLQReplayBatchReply{DryRun: req.DryRun, Matched: matched, Count: int(min(matched, int64(limit)))}
	if matched == 0 {
		return reply, nil
	}
	if a.replayer == nil && !req.DryRun {
		return nil, ErrReplayUnavailable
	}
	f.Limit = limit
	page, err := a.store.List(ctx, f)
	if err != nil {
		return nil, err
	}
	// Group by service, keeping the services in the order of their oldest
	// entry.
	var services []string
	ids := map[string][]string{}
	for _, e := range page.Entries {
		if _, ok := ids[e.Service]; !ok {
			services = append(services, e.Service)
		}
		ids[e.Service] = append(ids[e.Service], e.ID)
	}
	reply.Count = len(page.Entries)
	if req.DryRun {
		// What would happen: the gates are checked as the replay would
		// check them, nothing is published, audited or replayed.
		for _, svc := range services {
			s := ReplaySummary{Service: svc, Total: len(ids[svc])}
			if a.replayer == nil {
				reply.Results = append(reply.Results, s)
				continue
			}
			if stop, why := a.replayer.Gate(svc); stop != "" {
				s.Stop, s.GovernanceBlocked, s.GovernanceBlockReason = string(stop), stop == StopGovernance, why
				reply.Blocked += s.Total
			}
			reply.Results = append(reply.Results, s)
		}
		return reply, nil
	}
	details, err := json.Marshal(map[string]any{"filter": req.DLQFilter, "count": reply.Count, "services": services})
	if err != nil {
		return nil, err
	}
	if _, err := a.store.AppendAudit(ctx, domain.AuditRecord{
		At: a.cfg.Now(), Actor: req.Actor, Action: AuditDLQReplayBatch, Subject: "dlq:batch", Reason: req.Reason, Details: details,
	}); err != nil {
		return nil, err
	}
	for _, svc := range services {
		res, err := a.replayer.ReplayEntries(ctx, svc, ids[svc], ReplayOptions{Trigger: events.BatchTriggerOperator, Actor: req.Actor})
		if err != nil {
			return nil, fmt.Errorf("replay %d entries of %s: %w", len(ids[svc]), svc, err)
		}
		s := summarize(svc, res)
		reply.Results = append(reply.Results, s)
		reply.Replayed += s.SuccessCount
		if res.Stop == StopGovernance || res.Stop == StopBreakerOpen {
			reply.Blocked += max(len(ids[svc])-s.SuccessCount-s.FailedCount-s.EscalatedCount, 0)
		}
	}
	return reply, nil
}

func (a *API) requeue(ctx context.Context, body []byte) (any, error) {
	var req DLQRequeueRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	id, err := checkID(req.ID)
	if err != nil {
		return nil, err
	}
	if err := checkActorReason(req.Actor, req.Reason); err != nil {
		return nil, err
	}
	e, err := a.store.Requeue(ctx, id, store.Change{Actor: req.Actor, Reason: req.Reason})
	if err != nil {
		return nil, err
	}
	return entryReply(e), nil
}

func (a *API) discard(ctx context.Context, body []byte) (any, error) {
	return a.close(ctx, body, domain.DLQRejected)
}

func (a *API) resolve(ctx context.Context, body []byte) (any, error) {
	return a.close(ctx, body, domain.DLQResolved)
}

func (a *API) close(ctx context.Context, body []byte, to domain.DLQStatus) (any, error) {
	var req DLQCloseRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	id, err := checkID(req.ID)
	if err != nil {
		return nil, err
	}
	if err := checkActorReason(req.Actor, req.Reason); err != nil {
		return nil, err
	}
	if err := checkAPIText("note", req.Note, events.MaxReasonLen, false); err != nil {
		return nil, err
	}
	note := req.Note
	if note == "" {
		note = req.Reason
	}
	e, err := a.store.Close(ctx, id, to, note, store.Change{Actor: req.Actor, Reason: req.Reason})
	if err != nil {
		return nil, err
	}
	return entryReply(e), nil
}

func (a *API) stats(ctx context.Context, body []byte) (any, error) {
	var req DLQStatsRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	if req.Service != "" {
		if err := events.ValidateServiceName(req.Service); err != nil {
			return nil, fmt.Errorf("%w: field \"service\": %w", ErrBadRequest, err)
		}
	}
	if req.Limit == 0 {
		req.Limit = DefaultStatsLimit
	}
	if req.Limit < 1 || req.Limit > MaxStatsLimit {
		return nil, fmt.Errorf("%w: field \"limit\" is %d; want 1..%d", ErrBadRequest, req.Limit, MaxStatsLimit)
	}
	counts, err := a.store.Counts(ctx)
	if err != nil {
		return nil, err
	}
	return statsPage(counts, req), nil
}

// statsPage cuts the page req asks for out of every service's counts.
func statsPage(counts map[string]map[domain.DLQStatus]int64, req DLQStatsRequest) DLQStatsReply {
	if req.Service != "" {
		one := map[string]map[domain.DLQStatus]int64{}
		if c, ok := counts[req.Service]; ok {
			one[req.Service] = c
		}
		counts = one
	}
	reply := DLQStatsReply{Counts: map[string]map[domain.DLQStatus]int64{}, Totals: map[domain.DLQStatus]int64{}, Services: len(counts)}
	svcs := make([]string, 0, len(counts))
	for svc, byStatus := range counts {
		for st, n := range byStatus {
			reply.Totals[st] += n
		}
		if svc > req.After {
			svcs = append(svcs, svc)
		}
	}
	slices.Sort(svcs)
	if len(svcs) > req.Limit {
		svcs = svcs[:req.Limit]
		reply.Next = svcs[len(svcs)-1]
	}
	for _, svc := range svcs {
		reply.Counts[svc] = counts[svc]
	}
	return reply
}

// decodeRequest decodes a request body strictly into v: an empty body is
// {}, the body must be one JSON object, every member must be a field of v
// spelled exactly as its JSON name, and no member may appear twice.
func decodeRequest(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	if !json.Valid(body) {
		return fmt.Errorf("%w: the body is not valid JSON", ErrBadRequest)
	}
	if body[0] != '{' {
		return fmt.Errorf("%w: the body must be a JSON object", ErrBadRequest)
	}
	t := reflect.TypeOf(v).Elem()
	known := jsonFields(t)
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		name, _ := tok.(string)
		if !slices.Contains(known, name) {
			return fmt.Errorf("%w: unknown field %q (want %s)", ErrBadRequest, clipText(name, 64), strings.Join(known, ", "))
		}
		if seen[name] {
			return fmt.Errorf("%w: field %q appears twice", ErrBadRequest, name)
		}
		seen[name] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return fmt.Errorf("%w: field %q: %w", ErrBadRequest, name, err)
		}
		// Decode the member alone, so that a bad value is blamed on its
		// field whatever the decoder's own message says.
		member, err := json.Marshal(map[string]json.RawMessage{name: val})
		if err != nil {
			return fmt.Errorf("%w: field %q: %w", ErrBadRequest, name, err)
		}
		if err := json.Unmarshal(member, reflect.New(t).Interface()); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return fmt.Errorf("%w: field %q: want %s, got JSON %s", ErrBadRequest, name, te.Type, te.Value)
			}
			return fmt.Errorf("%w: field %q: %w", ErrBadRequest, name, err)
		}
	}
	strict := json.NewDecoder(bytes.NewReader(body))
	strict.DisallowUnknownFields()
	if err := strict.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return nil
}

// jsonFields lists the JSON names of t's fields, embedded structs included.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

// checkID returns the canonical form of an entry id, or a bad request.
func checkID(id string) (string, error) {
	if id == "" {
		return "", fmt.Errorf("%w: field \"id\" is required", ErrBadRequest)
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return "", fmt.Errorf("%w: field \"id\" is %q, not a UUID", ErrBadRequest, clipText(id, 64))
	}
	return u.String(), nil
}

// checkActorReason checks the actor and reason every write requires.
func checkActorReason(actor, reason string) error {
	if err := checkAPIText("actor", actor, events.MaxActorLen, true); err != nil {
		return err
	}
	return checkAPIText("reason", reason, events.MaxReasonLen, true)
}

// checkAPIText checks a text field: present when required, at most max
// bytes, valid UTF-8 without control characters.
func checkAPIText(field, s string, max int, required bool) error {
	if required && strings.TrimSpace(s) == "" {
		return fmt.Errorf("%w: field %q is required", ErrBadRequest, field)
	}
	if len(s) > max {
		return fmt.Errorf("%w: field %q is %d bytes long, at most %d are allowed", ErrBadRequest, field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: field %q is not valid UTF-8", ErrBadRequest, field)
	}
	for i, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: field %q has the control character %q at position %d", ErrBadRequest, field, r, i)
		}
	}
	return nil
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func joinStatuses(ss []domain.DLQStatus) string { return joinStrings(ss) }

func joinStrings[T ~string](ss []T) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return strings.Join(out, ", ")
}
