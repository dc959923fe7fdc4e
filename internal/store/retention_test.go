package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store"
)

func TestExpireAndDeleteEntries(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()

	old := entry("payments", -48*time.Hour)
	old.ExpiresAt = t0.Add(-time.Hour)
	fresh := entry("payments", 0)
	claimedOld := entry("payments", -47*time.Hour)
	claimedOld.ExpiresAt = t0.Add(-time.Hour)
	insert(t, s, old, fresh, claimedOld)
	l := lease(t, s, "payments", "node-a")
	_, err := s.ClaimEntries(ctx, "payments", l.Token, []string{claimedOld.ID}, t0)
	require.NoError(t, err)

	expired, err := s.ExpireEntries(ctx, t0, 100)
	require.NoError(t, err)
	require.Equal(t, []store.EntryRef{{ID: old.ID, Service: "payments"}}, expired, "a replaying entry is left to finish")
	got, err := s.Get(ctx, old.ID)
	require.NoError(t, err)
	require.Equal(t, domain.DLQExpired, got.Status)
	require.Equal(t, domain.ResolutionTTLExpired, got.ResolutionType)

	n, err := s.DeleteTerminal(ctx, t0, 1)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	n, err = s.DeleteTerminal(ctx, t0, 10)
	require.NoError(t, err)
	require.Zero(t, n, "nothing else is due")
	_, err = s.DeleteTerminal(ctx, t0, 0)
	require.ErrorIs(t, err, store.ErrInvalidArgument)
	_, err = s.Get(ctx, old.ID)
	require.ErrorIs(t, err, store.ErrNotFound)

	_, err = s.ExpireEntries(ctx, t0, 0)
	require.ErrorIs(t, err, store.ErrInvalidArgument)
}

func TestMarkSLABreached(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	late := entry("payments", -25*time.Hour)
	onTime := entry("payments", -time.Hour)
	otherDomain := entry("payments", -30*time.Hour)
	otherDomain.Domain = domain.DomainNotification
	insert(t, s, late, onTime, otherDomain)

	cutoff := t0.Add(-24 * time.Hour)
	flagged, err := s.MarkSLABreached(ctx, domain.DomainExternalService, cutoff, t0)
	require.NoError(t, err)
	require.Equal(t, []store.EntryRef{{ID: late.ID, Service: "payments"}}, flagged)
	got, err := s.Get(ctx, late.ID)
	require.NoError(t, err)
	require.Equal(t, t0, got.SLABreachedAt)

	flagged, err = s.MarkSLABreached(ctx, domain.DomainExternalService, cutoff, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Empty(t, flagged, "flagged once")
}
