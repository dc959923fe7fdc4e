package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store"
)

// escalated inserts an entry and drives it to requires_review through a
// failed replay.
func escalated(t *testing.T, s *store.Store) domain.DLQEntry {
	t.Helper()
	e := entry("payments", -time.Hour)
	insert(t, s, e)
	l, err := s.AcquireLease(t.Context(), "payments", "node-a", time.Minute, t0)
	require.NoError(t, err)
	_, err = s.ClaimEntries(t.Context(), "payments", l.Token, []string{e.ID}, t0)
	require.NoError(t, err)
	res, err := s.Escalate(t.Context(), e.ID, l.Token, "declined", t0)
	require.NoError(t, err)
	require.NoError(t, s.ReleaseLease(t.Context(), "payments", l.Token, t0))
	return res.Entry
}

func TestOperatorChanges(t *testing.T) {
	t.Parallel()
	by := store.Change{Actor: "oncall", Reason: "vendor fixed"}

	t.Run("requeue", func(t *testing.T) {
		t.Parallel()
		s, _, c := newStore(t)
		e := escalated(t, s)
		c.Set(t0.Add(time.Hour))
		got, err := s.Requeue(t.Context(), e.ID, by)
		require.NoError(t, err)
		require.Equal(t, domain.DLQPending, got.Status)
		require.Zero(t, got.RetryCount, "a fresh set of attempts")
		require.Len(t, got.ErrorHistory, 1, "the history is kept")
		require.Equal(t, t0.Add(time.Hour), got.NextAttemptAt)
		require.Equal(t, t0.Add(time.Hour), got.UpdatedAt)
	})
	t.Run("review and hand back", func(t *testing.T) {
		t.Parallel()
		s, _, _ := newStore(t)
		e := escalated(t, s)
		got, err := s.Review(t.Context(), e.ID, domain.DLQReviewing, by)
		require.NoError(t, err)
		require.Equal(t, domain.DLQReviewing, got.Status)
		got, err = s.Review(t.Context(), e.ID, domain.DLQRequiresReview, by)
		require.NoError(t, err)
		require.Equal(t, domain.DLQRequiresReview, got.Status)
		_, err = s.Review(t.Context(), e.ID, domain.DLQPending, by)
		require.ErrorIs(t, err, store.ErrInvalidArgument)
	})
	t.Run("close", func(t *testing.T) {
		t.Parallel()
		s, _, _ := newStore(t)
		for _, tt := range []struct {
			to   domain.DLQStatus
			do   func(id string) (domain.DLQEntry, error)
			res  domain.ResolutionType
			note string
		}{
			{domain.DLQResolved, func(id string) (domain.DLQEntry, error) { return s.Resolve(t.Context(), id, "refunded", by) },
				domain.ResolutionManualFix, "refunded"},
			{domain.DLQRejected, func(id string) (domain.DLQEntry, error) { return s.Discard(t.Context(), id, by) },
				domain.ResolutionRejected, by.Reason},
			{domain.DLQArchived, func(id string) (domain.DLQEntry, error) {
				return s.Close(t.Context(), id, domain.DLQArchived, "kept", by)
			}, domain.ResolutionArchived, "kept"},
			{domain.DLQPermanentlyFailed, func(id string) (domain.DLQEntry, error) {
				return s.Close(t.Context(), id, domain.DLQPermanentlyFailed, "gone", by)
			}, "", "gone"},
		} {
			e := escalated(t, s)
			got, err := tt.do(e.ID)
			require.NoError(t, err, tt.to)
			require.Equal(t, tt.to, got.Status)
			require.Equal(t, tt.res, got.ResolutionType)
			require.Equal(t, tt.note, got.ResolutionNote)
			require.Equal(t, t0, got.ResolvedAt)
			// Terminal: nothing more.
			_, err = s.Requeue(t.Context(), e.ID, by)
			require.ErrorIs(t, err, store.ErrInvalidTransition, tt.to)
		}
	})
}

func TestOperatorChangesRefused(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	by := store.Change{Actor: "oncall", Reason: "why not"}

	pending := entry("payments", 0)
	insert(t, s, pending)
	// pending → pending is not a change.
	_, err := s.Requeue(ctx, pending.ID, by)
	require.ErrorIs(t, err, store.ErrInvalidTransition)

	// A replaying entry belongs to its replayer.
	replaying := entry("payments", -time.Hour)
	insert(t, s, replaying)
	l := lease(t, s, "payments", "node-a")
	_, err = s.ClaimEntries(ctx, "payments", l.Token, []string{replaying.ID}, t0)
	require.NoError(t, err)
	_, err = s.Discard(ctx, replaying.ID, by)
	require.ErrorIs(t, err, store.ErrInvalidTransition)
	_, err = s.Requeue(ctx, replaying.ID, by)
	require.ErrorIs(t, err, store.ErrInvalidTransition)

	_, err = s.Resolve(ctx, uuid.NewString(), "x", by)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.Resolve(ctx, pending.ID, "x", store.Change{Actor: "oncall"})
	require.ErrorIs(t, err, store.ErrInvalidArgument, "a reason is required")
	_, err = s.Close(ctx, pending.ID, domain.DLQReviewing, "x", by)
	require.ErrorIs(t, err, store.ErrInvalidArgument)
	_, err = s.Close(ctx, pending.ID, domain.DLQReplayed, "x", by)
	require.ErrorIs(t, err, store.ErrInvalidTransition, "only the replay engine marks replayed")

	// Refusals write no audit record.
	recs, err := s.ListAudit(ctx, "", 0, 100)
	require.NoError(t, err)
	require.Empty(t, recs)
	got, err := s.Get(ctx, replaying.ID)
	require.NoError(t, err)
	require.Equal(t, domain.DLQReplaying, got.Status)
}

func TestOperatorChangesAreAudited(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	e := escalated(t, s)
	_, err := s.Review(ctx, e.ID, domain.DLQReviewing, store.Change{Actor: "alice", Reason: "looking"})
	require.NoError(t, err)
	_, err = s.Resolve(ctx, e.ID, "refunded by hand", store.Change{Actor: "bob", Reason: "customer called"})
	require.NoError(t, err)

	recs, err := s.ListAudit(ctx, "dlq:"+e.ID, 0, 100)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	require.Equal(t, "alice", recs[0].Actor)
	require.Equal(t, store.AuditDLQReview, recs[0].Action)
	require.Equal(t, "looking", recs[0].Reason)
	require.Equal(t, "bob", recs[1].Actor)
	require.Equal(t, store.AuditDLQClose, recs[1].Action)
	var details map[string]string
	require.NoError(t, json.Unmarshal(recs[1].Details, &details))
	require.Equal(t, map[string]string{"service": "payments", "from": "reviewing", "to": "resolved", "note": "refunded by hand"}, details)
	require.NoError(t, verifyErr(s.VerifyAuditChain(ctx, nil)))
}
