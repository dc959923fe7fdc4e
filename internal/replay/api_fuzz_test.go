package replay

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/store"
)

// fuzzStore is an APIStore that accepts every call and remembers what
// reached it, so that a fuzz target can check that only checked values get
// past the endpoints' decoding. Every entry exists and is pending.
type fuzzStore struct {
	mu      sync.Mutex
	ids     []string
	changes []store.Change
	filters []store.ListFilter
	audits  []domain.AuditRecord
}

func (s *fuzzStore) entry(id string) domain.DLQEntry {
	return domain.DLQEntry{ID: id, Service: "svc", Status: domain.DLQPending}
}

func (s *fuzzStore) List(_ context.Context, f store.ListFilter) (store.Page, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.filters = append(s.filters, f)
	return store.Page{}, nil
}

func (s *fuzzStore) Count(_ context.Context, f store.ListFilter) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.filters = append(s.filters, f)
	return 0, nil
}

func (s *fuzzStore) Get(_ context.Context, id string) (domain.DLQEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, id)
	return s.entry(id), nil
}

func (s *fuzzStore) Requeue(_ context.Context, id string, c store.Change) (domain.DLQEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids, s.changes = append(s.ids, id), append(s.changes, c)
	return s.entry(id), nil
}

func (s *fuzzStore) Close(_ context.Context, id string, to domain.DLQStatus, _ string, c store.Change) (domain.DLQEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids, s.changes = append(s.ids, id), append(s.changes, c)
	e := s.entry(id)
	e.Status = to
	return e, nil
}

func (s *fuzzStore) Counts(context.Context) (map[string]map[domain.DLQStatus]int64, error) {
	return map[string]map[domain.DLQStatus]int64{}, nil
}

func (s *fuzzStore) AppendAudit(_ context.Context, r domain.AuditRecord) (domain.AuditRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.audits = append(s.audits, r)
	return r, nil
}

// fuzzReplayer replays nothing and succeeds.
type fuzzReplayer struct{}

func (fuzzReplayer) Gate(string) (StopReason, string) { return "", "" }

func (fuzzReplayer) ReplayEntries(context.Context, string, []string, ReplayOptions) (ReplayResult, error) {
	return ReplayResult{}, nil
}

// FuzzAPIRequest feeds arbitrary bodies to every DLQ endpoint's handler (the
// code behind baldur.api.dlq.<op>, without the NATS round trip). A handler
// never panics; over a store that accepts everything, every refusal is a
// bad request (400) naming the problem; and what reaches the store is
// checked: canonical entry ids, actor and reason present, bounded and free
// of control characters, filters with known statuses and valid service
// names.
func FuzzAPIRequest(f *testing.F) {
	id := uuid.NewString()
	seeds := []string{
		``, `{}`, `[]`, `null`, `"x"`, `{"id":"` + id + `"}`,
		`{"id":"` + id + `","actor":"ops","reason":"fixed upstream"}`,
		`{"id":"` + id + `","actor":"ops","reason":"r","note":"n"}`,
		`{"id":"` + strings.ToUpper(id) + `","actor":"ops","reason":"r"}`,
		`{"service":"payments","status":["pending","requires_review"],"older_than":"1h","limit":10}`,
		`{"service":"pay.*","status":"pending"}`, `{"service":"a>b"}`, `{"service":"a\u0000b"}`,
		`{"status":"nope"}`, `{"status":7}`, `{"limit":-1}`, `{"limit":1e9}`, `{"limit":"10"}`,
		`{"created_after":"2026-01-01T00:00:00Z","created_before":"2025-01-01T00:00:00Z"}`,
		`{"older_than":"1h","created_before":"2026-01-01T00:00:00Z"}`,
		`{"dry_run":true,"actor":"ops","reason":"r","status":"pending"}`,
		`{"dry_run":true,"actor":"ops","reason":"r","status":"resolved"}`,
		`{"id":"` + id + `","id":"` + id + `"}`, `{"ID":"` + id + `"}`, `{"unknown":1}`,
		`{"id":"` + id + `","actor":"o\tps","reason":"r"}`, `{"id":"` + id + `","actor":"` + strings.Repeat("a", 300) + `","reason":"r"}`,
		`{"id":"` + id + `","actor":"\xff","reason":"r"}`, `{"cursor":"\u0007"}`, `{"id":"` + id + `"} {}`,
		`{"id":{"nested":[1,2,3]}}`, `{"domain":"infrastructure","failure_type":"TIMEOUT"}`,
	}
	ops := events.DLQOps
	for i, s := range seeds {
		f.Add(uint8(i%len(ops)), []byte(s))
	}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, opIndex uint8, body []byte) {
		st := &fuzzStore{}
		// A zero Conn reports a max payload of 0: list then shrinks its
		// page to one entry, which the empty store does not mind.
		a := NewAPI(&nats.Conn{}, st, fuzzReplayer{}, APIConfig{Node: "fuzz", Now: func() time.Time { return now }})
		handlers := map[events.DLQOp]func(context.Context, []byte) (any, error){
			events.DLQOpList: a.list, events.DLQOpGet: a.get, events.DLQOpReplay: a.replayOne,
			events.DLQOpReplayBatch: a.replayBatch, events.DLQOpRequeue: a.requeue,
			events.DLQOpDiscard: a.discard, events.DLQOpResolve: a.resolve, events.DLQOpStats: a.stats,
		}
		require.Len(t, handlers, len(ops), "a DLQ op has no handler in the fuzz target")
		op := ops[int(opIndex)%len(ops)]
		reply, err := handlers[op](t.Context(), body)
		if err != nil {
			require.ErrorIs(t, err, ErrBadRequest, "op %s refused %q with a non-400 error", op, body)
			require.Equal(t, 400, ErrorStatus(err))
			require.Nil(t, reply)
			require.True(t, utf8.ValidString(err.Error()) || !utf8.Valid(body), "the reason is not valid UTF-8: %q", err.Error())
			return
		}
		_, err = json.Marshal(reply)
		require.NoError(t, err, "the reply of op %s does not encode", op)
		for _, got := range st.ids {
			u, err := uuid.Parse(got)
			require.NoError(t, err)
			require.Equal(t, u.String(), got, "a non-canonical id reached the store")
		}
		for _, c := range st.changes {
			requireCheckedText(t, c.Actor, events.MaxActorLen)
			requireCheckedText(t, c.Reason, events.MaxReasonLen)
		}
		for _, r := range st.audits {
			requireCheckedText(t, r.Actor, events.MaxActorLen)
			requireCheckedText(t, r.Reason, events.MaxReasonLen)
		}
		for _, lf := range st.filters {
			if lf.Service != "" {
				require.NoError(t, events.ValidateServiceName(lf.Service))
			}
			for _, s := range lf.Statuses {
				require.True(t, s.Valid(), "unknown status %q reached the store", s)
			}
			require.True(t, lf.Domain == "" || lf.Domain.Valid(), "unknown domain %q reached the store", lf.Domain)
		}
	})
}

func requireCheckedText(t *testing.T, s string, maxLen int) {
	t.Helper()
	require.NotEmpty(t, strings.TrimSpace(s))
	require.LessOrEqual(t, len(s), maxLen)
	require.True(t, utf8.ValidString(s))
	require.False(t, strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }), "control character in %q", s)
}

// TestFuzzStoreSeesErrors keeps the fuzz target honest: a refused body
// never reaches the store.
func TestFuzzStoreSeesErrors(t *testing.T) {
	t.Parallel()
	st := &fuzzStore{}
	a := NewAPI(&nats.Conn{}, st, fuzzReplayer{}, APIConfig{Node: "fuzz"})
	_, err := a.requeue(t.Context(), []byte(`{"id":"`+uuid.NewString()+`","actor":"a\u0001","reason":"r"}`))
	require.True(t, errors.Is(err, ErrBadRequest), "got %v", err)
	require.Empty(t, st.changes)
}
