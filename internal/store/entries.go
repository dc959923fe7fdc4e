package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store/dbsqlc"
)

// insertChunk bounds the rows of one INSERT statement.
const insertChunk = 2000

// InsertResult says what InsertEntries did with each entry, by id, in input
// order.
type InsertResult struct {
	// Inserted are the ids of the entries that were stored.
	Inserted []string
	// Duplicates are the ids of the entries that were not stored because an
	// entry with the same id, or a live entry with the same (service,
	// idempotency_key), already existed or came earlier in the batch.
	Duplicates []string
}

// InsertEntry stores a new dead letter as pending (see InsertEntries for the
// defaults it fills in). A duplicate is not stored and is reported as an error
// wrapping ErrDuplicate.
func (s *Store) InsertEntry(ctx context.Context, e domain.DLQEntry) error {
	res, err := s.InsertEntries(ctx, []domain.DLQEntry{e})
	if err != nil {
		return err
	}
	if len(res.Inserted) == 0 {
		return fmt.Errorf("insert entry %s for service %s: %w", e.ID, e.Service, ErrDuplicate)
	}
	return nil
}

// ServicesWithDueEntries returns, sorted, the services that have pending
// entries due at now (next_attempt_at not after now).
func (s *Store) ServicesWithDueEntries(ctx context.Context, now time.Time) ([]string, error) {
	svcs, err := s.q.ServicesWithDueEntries(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("services with due entries: %w", err)
	}
	return svcs, nil
}

// InsertEntries stores new dead letters in as few statements as possible
// (one multi-row INSERT per 2000 entries, in one transaction). It is
// idempotent on the entry id and on (service, idempotency_key) among live
// entries, within the batch as well as against stored rows: a duplicate is
// skipped, not an error, and reported in the result. The entries inserted
// are added to their services' live counts in the same transaction (see
// LiveCounts).
//
// Every entry is stored with status pending and no replay bookkeeping
// (retries, resolution, lease, SLA flag); of those fields only MaxRetries and
// RecommendedAction are taken from the entry. An empty Domain is custom, an
// empty Priority normal; a zero CreatedAt is the store's clock, a zero
// NextAttemptAt is CreatedAt and a zero ExpiresAt is CreatedAt plus the
// retention. An entry that cannot be stored fails the whole call, with an
// error wrapping ErrInvalidEntry, before anything is written.
func (s *Store) InsertEntries(ctx context.Context, entries []domain.DLQEntry) (InsertResult, error) {
	if len(entries) == 0 {
		return InsertResult{}, nil
	}
	now := s.now()
	params := make([]dbsqlc.InsertEntriesCountedParams, 0, (len(entries)+insertChunk-1)/insertChunk)
	for start := 0; start < len(entries); start += insertChunk {
		chunk := entries[start:min(start+insertChunk, len(entries))]
		p, err := s.insertParams(chunk, start, now)
		if err != nil {
			return InsertResult{}, err
		}
		params = append(params, p)
	}

	inserted := make(map[string]int, len(entries))
	var err error
	if len(params) == 1 {
		// One statement inserts the entries and adds them to the live
		// counts (their rows locked in service order).
		err = s.insertChunk(ctx, s.q, params[0], inserted)
	} else {
		err = s.inTx(ctx, func(q *dbsqlc.Queries) error {
			// Several statements: lock every counter row of the batch first,
			// in service order, as every other writer locks them; each
			// chunk then adds to rows already held, so no two writers wait
			// for each other in a cycle.
			services := distinctSorted(params)
			if err := q.EnsureLiveCounts(ctx, services); err != nil {
				return fmt.Errorf("insert %d dead letters: make their live counts: %w", len(entries), err)
			}
			if err := q.LockLiveCounts(ctx, services); err != nil {
				return fmt.Errorf("insert %d dead letters: lock their live counts: %w", len(entries), err)
			}
			for _, p := range params {
				if err := s.insertChunk(ctx, q, p, inserted); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return InsertResult{}, err
	}

	var res InsertResult
	for _, p := range params {
		for _, id := range p.Ids {
			if inserted[id] > 0 {
				inserted[id]--
				res.Inserted = append(res.Inserted, id)
			} else {
				res.Duplicates = append(res.Duplicates, id)
			}
		}
	}
	return res, nil
}

// insertChunk inserts one chunk with the live counts of its services and
// counts the ids it inserted into inserted.
func (s *Store) insertChunk(ctx context.Context, q *dbsqlc.Queries, p dbsqlc.InsertEntriesCountedParams, inserted map[string]int) error {
	ids, err := q.InsertEntriesCounted(ctx, p)
	if err != nil {
		if isDataError(err) {
			// PostgreSQL refuses a value: the batch holds an entry that can
			// never be stored, which the caller finds by retrying the
			// entries one by one.
			return fmt.Errorf("insert %d dead letters: %w: %w", len(p.Ids), ErrInvalidEntry, err)
		}
		return fmt.Errorf("insert %d dead letters: %w", len(p.Ids), err)
	}
	for _, id := range ids {
		inserted[id]++
	}
	return nil
}

// distinctSorted returns the services of the chunks, sorted, each once.
func distinctSorted(params []dbsqlc.InsertEntriesCountedParams) []string {
	var out []string
	for _, p := range params {
		out = append(out, p.Services...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (s *Store) insertParams(entries []domain.DLQEntry, offset int, now time.Time) (dbsqlc.InsertEntriesCountedParams, error) {
	n := len(entries)
	p := dbsqlc.InsertEntriesCountedParams{
		Ids:                make([]string, n),
		Services:           make([]string, n),
		Domains:            make([]string, n),
		FailureTypes:       make([]string, n),
		Operations:         make([]string, n),
		IdempotencyKeys:    make([]string, n),
		EntityTypes:        make([]string, n),
		EntityIds:          make([]string, n),
		Requests:           make([][]byte, n),
		ErrorCodes:         make([]string, n),
		ErrorMessages:      make([]string, n),
		Priorities:         make([]string, n),
		Metadata:           make([][]byte, n),
		MaxRetries:         make([]int32, n),
		NextAttemptAts:     make([]time.Time, n),
		RecommendedActions: make([]string, n),
		CreatedAts:         make([]time.Time, n),
		UpdatedAts:         make([]time.Time, n),
		ExpiresAts:         make([]time.Time, n),
	}
	for i, e := range entries {
		if err := s.normalize(&e, now); err != nil {
			return dbsqlc.InsertEntriesCountedParams{}, fmt.Errorf("entry %d (%q): %w", offset+i, e.ID, err)
		}
		p.Ids[i] = e.ID
		p.Services[i] = e.Service
		p.Domains[i] = string(e.Domain)
		p.FailureTypes[i] = e.FailureType
		p.Operations[i] = e.Operation
		p.IdempotencyKeys[i] = e.IdempotencyKey
		p.EntityTypes[i] = e.EntityType
		p.EntityIds[i] = e.EntityID
		p.Requests[i] = e.Request
		p.ErrorCodes[i] = e.ErrorCode
		p.ErrorMessages[i] = e.ErrorMessage
		p.Priorities[i] = string(e.Priority)
		p.Metadata[i] = e.Metadata
		p.MaxRetries[i] = int32(e.MaxRetries)
		p.NextAttemptAts[i] = e.NextAttemptAt
		p.RecommendedActions[i] = string(e.RecommendedAction)
		p.CreatedAts[i] = e.CreatedAt
		p.UpdatedAts[i] = e.UpdatedAt
		p.ExpiresAts[i] = e.ExpiresAt
	}
	return p, nil
}

// normalize checks e and fills in the defaults InsertEntries documents.
func (s *Store) normalize(e *domain.DLQEntry, now time.Time) error {
	id, err := uuid.Parse(e.ID)
	if err != nil {
		return fmt.Errorf("%w: id is not a UUID: %w", ErrInvalidEntry, err)
	}
	e.ID = id.String()
	if e.Service == "" {
		return fmt.Errorf("%w: service is empty", ErrInvalidEntry)
	}
	if e.Domain == "" {
		e.Domain = domain.DomainCustom
	}
	if !e.Domain.Valid() {
		return fmt.Errorf("%w: %w %q", ErrInvalidEntry, domain.ErrInvalidFailureDomain, e.Domain)
	}
	if e.Priority == "" {
		e.Priority = domain.PriorityNormal
	}
	if !e.Priority.Valid() {
		return fmt.Errorf("%w: %w %q", ErrInvalidEntry, domain.ErrInvalidPriority, e.Priority)
	}
	if e.RecommendedAction != "" && !e.RecommendedAction.Valid() {
		return fmt.Errorf("%w: unknown recommended_action %q", ErrInvalidEntry, e.RecommendedAction)
	}
	if e.MaxRetries < 0 || e.MaxRetries > 1<<30 {
		return fmt.Errorf("%w: max_retries %d out of range", ErrInvalidEntry, e.MaxRetries)
	}
	if len(e.Request) > 0 && !json.Valid(e.Request) {
		return fmt.Errorf("%w: request is not valid JSON", ErrInvalidEntry)
	}
	if err := domain.CheckStorableJSON(e.Request); err != nil {
		return fmt.Errorf("%w: request: %w", ErrInvalidEntry, err)
	}
	if len(e.Metadata) > 0 && !json.Valid(e.Metadata) {
		return fmt.Errorf("%w: metadata is not valid JSON", ErrInvalidEntry)
	}
	if err := domain.CheckStorableJSON(e.Metadata); err != nil {
		return fmt.Errorf("%w: metadata: %w", ErrInvalidEntry, err)
	}
	for _, f := range []struct{ name, v string }{
		{"service", e.Service}, {"failure_type", e.FailureType}, {"operation", e.Operation},
		{"idempotency_key", e.IdempotencyKey}, {"entity_type", e.EntityType}, {"entity_id", e.EntityID},
		{"error_code", e.ErrorCode}, {"error_message", e.ErrorMessage},
	} {
		if err := domain.CheckStorableText(f.v); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalidEntry, f.name, err)
		}
	}
	if len(e.Request) == 0 {
		e.Request = nil
	}
	if len(e.Metadata) == 0 {
		e.Metadata = nil
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = now
	}
	e.UpdatedAt = now
	if e.NextAttemptAt.IsZero() {
		e.NextAttemptAt = e.CreatedAt
	}
	if e.ExpiresAt.IsZero() {
		e.ExpiresAt = e.CreatedAt.Add(s.retention)
	}
	return nil
}

// Get returns the entry with the given id, or an error wrapping ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (domain.DLQEntry, error) {
	if _, err := uuid.Parse(id); err != nil {
		return domain.DLQEntry{}, fmt.Errorf("get entry %q: %w", id, ErrNotFound)
	}
	row, err := s.q.GetEntry(ctx, id)
	if isNoRows(err) {
		return domain.DLQEntry{}, fmt.Errorf("get entry %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return domain.DLQEntry{}, fmt.Errorf("get entry %s: %w", id, err)
	}
	return entryFromRow(row)
}

// Default and maximum page sizes of List.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// ListFilter selects entries. Zero fields do not filter.
type ListFilter struct {
	Service     string
	Statuses    []domain.DLQStatus
	Domain      domain.FailureDomain
	FailureType string
	// CreatedAfter keeps entries created at or after it.
	CreatedAfter time.Time
	// CreatedBefore keeps entries created before it.
	CreatedBefore time.Time
	// Limit is the page size: DefaultListLimit when zero, at most
	// MaxListLimit.
	Limit int
	// Cursor continues a listing from Page.NextCursor.
	Cursor string
}

// Page is one page of a listing, in creation order (oldest first, then by
// id).
type Page struct {
	Entries []domain.DLQEntry
	// NextCursor continues the listing; empty on the last page.
	NextCursor string
}

// List returns the entries that match every field of f, one page at a time.
func (s *Store) List(ctx context.Context, f ListFilter) (Page, error) {
	limit := f.Limit
	switch {
	case limit == 0:
		limit = DefaultListLimit
	case limit < 0 || limit > MaxListLimit:
		return Page{}, fmt.Errorf("list entries: %w: limit %d outside 1..%d", ErrInvalidArgument, limit, MaxListLimit)
	}
	a, err := f.args()
	if err != nil {
		return Page{}, fmt.Errorf("list entries: %w", err)
	}
	p := dbsqlc.ListEntriesParams{
		Service: a.service, Statuses: a.statuses, Domain: a.domain, FailureType: a.failureType,
		CreatedAfter: a.after, CreatedBefore: a.before, MaxRows: int32(limit + 1),
	}
	if f.Cursor != "" {
		at, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return Page{}, fmt.Errorf("list entries: %w", err)
		}
		p.AfterCreatedAt, p.AfterID = &at, &id
	}
	rows, err := s.q.ListEntries(ctx, p)
	if err != nil {
		return Page{}, fmt.Errorf("list entries: %w", err)
	}
	var page Page
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[limit-1]
		page.NextCursor = encodeCursor(last.CreatedAt, last.ID)
	}
	if page.Entries, err = entriesFromRows(rows); err != nil {
		return Page{}, fmt.Errorf("list entries: %w", err)
	}
	return page, nil
}

// Count returns how many entries match every field of f (Limit and Cursor
// are ignored), e.g. for the dry run of a filtered replay.
func (s *Store) Count(ctx context.Context, f ListFilter) (int64, error) {
	a, err := f.args()
	if err != nil {
		return 0, fmt.Errorf("count entries: %w", err)
	}
	n, err := s.q.CountEntries(ctx, dbsqlc.CountEntriesParams{
		Service: a.service, Statuses: a.statuses, Domain: a.domain, FailureType: a.failureType,
		CreatedAfter: a.after, CreatedBefore: a.before,
	})
	if err != nil {
		return 0, fmt.Errorf("count entries: %w", err)
	}
	return n, nil
}

// filterArgs are a ListFilter's query arguments; nil and empty do not filter.
type filterArgs struct {
	service, domain, failureType *string
	statuses                     []string
	after, before                *time.Time
}

func (f ListFilter) args() (filterArgs, error) {
	var a filterArgs
	for _, st := range f.Statuses {
		if !st.Valid() {
			return a, fmt.Errorf("%w: %w %q", ErrInvalidArgument, domain.ErrUnknownDLQStatus, st)
		}
	}
	if f.Domain != "" && !f.Domain.Valid() {
		return a, fmt.Errorf("%w: %w %q", ErrInvalidArgument, domain.ErrInvalidFailureDomain, f.Domain)
	}
	if f.Service != "" {
		a.service = &f.Service
	}
	if len(f.Statuses) > 0 {
		a.statuses = statusStrings(f.Statuses)
	}
	if f.Domain != "" {
		d := string(f.Domain)
		a.domain = &d
	}
	if f.FailureType != "" {
		a.failureType = &f.FailureType
	}
	a.after, a.before = toPtr(f.CreatedAfter), toPtr(f.CreatedBefore)
	return a, nil
}

// A cursor is the last entry's creation time (Unix microseconds, the
// database's precision) and id, base64url-encoded.
func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + "/" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w: malformed cursor %q", ErrInvalidArgument, c)
	}
	micros, id, ok := strings.Cut(string(b), "/")
	us, err := strconv.ParseInt(micros, 10, 64)
	if !ok || err != nil {
		return time.Time{}, "", fmt.Errorf("%w: malformed cursor %q", ErrInvalidArgument, c)
	}
	if _, err := uuid.Parse(id); err != nil {
		return time.Time{}, "", fmt.Errorf("%w: malformed cursor %q", ErrInvalidArgument, c)
	}
	return time.UnixMicro(us).UTC(), id, nil
}

// Counts returns the number of entries per service and status; statuses
// with no entry are absent.
func (s *Store) Counts(ctx context.Context) (map[string]map[domain.DLQStatus]int64, error) {
	rows, err := s.q.CountByServiceStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("count entries by service and status: %w", err)
	}
	out := make(map[string]map[domain.DLQStatus]int64)
	for _, r := range rows {
		m := out[r.Service]
		if m == nil {
			m = make(map[domain.DLQStatus]int64)
			out[r.Service] = m
		}
		m[domain.DLQStatus(r.Status)] = r.N
	}
	return out, nil
}

// CountPending returns how many of the service's entries are pending, due or
// not.
func (s *Store) CountPending(ctx context.Context, service string) (int64, error) {
	n, err := s.q.CountPending(ctx, service)
	if err != nil {
		return 0, fmt.Errorf("count pending entries of %s: %w", service, err)
	}
	return n, nil
}

// NextAttemptAt returns when the service's earliest pending entry is due, and
// false when it has no pending entry: a drain sleeps until then.
func (s *Store) NextAttemptAt(ctx context.Context, service string) (time.Time, bool, error) {
	at, err := s.q.NextAttemptAt(ctx, service)
	if isNoRows(err) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next attempt of %s: %w", service, err)
	}
	return at.UTC(), true, nil
}
