package store_test

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store"
)

func TestAppendAuditEventOnce(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	eventID := uuid.NewString()
	rec := domain.AuditRecord{
		At: t0, Actor: "oncall", Action: "breaker.open", Subject: "breaker:payments",
		Reason: "vendor maintenance", Details: json.RawMessage(`{"generation": 3}`),
	}

	first, appended, err := s.AppendAuditEvent(ctx, eventID, rec)
	require.NoError(t, err)
	require.True(t, appended)
	require.EqualValues(t, 1, first.Seq)

	again, appended, err := s.AppendAuditEvent(ctx, eventID, rec)
	require.NoError(t, err)
	require.False(t, appended, "a redelivered event is not appended twice")
	require.Equal(t, first.Seq, again.Seq)
	require.Equal(t, first.Hash, again.Hash)

	got, err := s.AuditRecordOfEvent(ctx, eventID)
	require.NoError(t, err)
	require.Equal(t, first.Hash, got.Hash)

	// Operator records (no event id) and event records share one chain.
	_, err = s.AppendAudit(ctx, domain.AuditRecord{At: t0, Actor: "oncall", Action: "dlq.close"})
	require.NoError(t, err)
	next, appended, err := s.AppendAuditEvent(ctx, uuid.NewString(), rec)
	require.NoError(t, err)
	require.True(t, appended)
	require.EqualValues(t, 3, next.Seq)
	require.NoError(t, verifyErr(s.VerifyAuditChain(ctx, nil)))
}

func TestAppendAuditEventConcurrentRedelivery(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	eventID := uuid.NewString()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		appended int
	)
	for range 8 {
		wg.Go(func() {
			_, ok, err := s.AppendAuditEvent(ctx, eventID, domain.AuditRecord{At: t0, Actor: "a", Action: "governance.kill_switch"})
			require.NoError(t, err)
			if ok {
				mu.Lock()
				appended++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Equal(t, 1, appended)
	recs, err := s.ListAudit(ctx, "", 0, 10)
	require.NoError(t, err)
	require.Len(t, recs, 1)
}

func TestAppendAuditEventRefusals(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	tests := []struct {
		name    string
		eventID string
		rec     domain.AuditRecord
	}{
		{"bad event id", "not-a-uuid", domain.AuditRecord{Actor: "a", Action: "b"}},
		{"no actor", uuid.NewString(), domain.AuditRecord{Action: "b"}},
		{"no action", uuid.NewString(), domain.AuditRecord{Actor: "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := s.AppendAuditEvent(ctx, tt.eventID, tt.rec)
			require.ErrorIs(t, err, store.ErrInvalidArgument)
		})
	}
	_, err := s.AuditRecordOfEvent(ctx, uuid.NewString())
	require.ErrorIs(t, err, store.ErrNotFound)
}
