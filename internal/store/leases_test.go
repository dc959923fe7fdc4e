package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store"
)

func TestLeaseLifecycle(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()

	a, err := s.AcquireLease(ctx, "payments", "node-a", time.Minute, t0)
	require.NoError(t, err)
	require.Equal(t, domain.Lease{Service: "payments", Holder: "node-a", Token: a.Token,
		AcquiredAt: t0, RenewedAt: t0, ExpiresAt: t0.Add(time.Minute)}, a)
	require.Positive(t, a.Token)

	got, err := s.GetLease(ctx, "payments")
	require.NoError(t, err)
	require.Equal(t, a, got)

	// Another holder is refused while the lease is current.
	_, err = s.AcquireLease(ctx, "payments", "node-b", time.Minute, t0.Add(59*time.Second))
	require.ErrorIs(t, err, store.ErrLeaseHeld)
	require.ErrorContains(t, err, "node-a")

	// Renewal extends it.
	r, err := s.RenewLease(ctx, "payments", a.Token, time.Minute, t0.Add(30*time.Second))
	require.NoError(t, err)
	require.Equal(t, a.Token, r.Token)
	require.Equal(t, t0.Add(90*time.Second), r.ExpiresAt)
	require.Equal(t, t0.Add(30*time.Second), r.RenewedAt)
	_, err = s.AcquireLease(ctx, "payments", "node-b", time.Minute, t0.Add(80*time.Second))
	require.ErrorIs(t, err, store.ErrLeaseHeld)

	// Once expired, renewal fails and another holder takes over with a
	// larger token.
	expired := t0.Add(90 * time.Second)
	_, err = s.RenewLease(ctx, "payments", a.Token, time.Minute, expired)
	require.ErrorIs(t, err, store.ErrLeaseLost)
	b, err := s.AcquireLease(ctx, "payments", "node-b", time.Minute, expired)
	require.NoError(t, err)
	require.Greater(t, b.Token, a.Token)

	// The old token can neither renew nor release.
	_, err = s.RenewLease(ctx, "payments", a.Token, time.Minute, expired)
	require.ErrorIs(t, err, store.ErrLeaseLost)
	require.ErrorIs(t, s.ReleaseLease(ctx, "payments", a.Token, expired), store.ErrLeaseLost)

	// Release frees the service at once, for anyone, with a larger token.
	require.NoError(t, s.ReleaseLease(ctx, "payments", b.Token, expired))
	_, err = s.GetLease(ctx, "payments")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, s.ReleaseLease(ctx, "payments", b.Token, expired), store.ErrLeaseLost)
	c, err := s.AcquireLease(ctx, "payments", "node-a", time.Minute, expired)
	require.NoError(t, err)
	require.Greater(t, c.Token, b.Token)

	// The holder re-acquiring its own lease gets a new token that fences the
	// old one.
	d, err := s.AcquireLease(ctx, "payments", "node-a", time.Minute, expired.Add(time.Second))
	require.NoError(t, err)
	require.Greater(t, d.Token, c.Token)
	_, err = s.RenewLease(ctx, "payments", c.Token, time.Minute, expired.Add(time.Second))
	require.ErrorIs(t, err, store.ErrLeaseLost)
}

func TestLeaseArguments(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	for name, call := range map[string]func() error{
		"empty service": func() error { _, err := s.AcquireLease(t.Context(), "", "h", time.Minute, t0); return err },
		"empty holder":  func() error { _, err := s.AcquireLease(t.Context(), "svc", "", time.Minute, t0); return err },
		"zero ttl":      func() error { _, err := s.AcquireLease(t.Context(), "svc", "h", 0, t0); return err },
		"renew zero":    func() error { _, err := s.RenewLease(t.Context(), "svc", 1, 0, t0); return err },
	} {
		require.ErrorIs(t, call(), store.ErrInvalidArgument, name)
	}
}

func TestLeaseTokensIncreaseAcrossServicesAndRaces(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()

	// Many holders race for one service: exactly one wins.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []domain.Lease
		start   = make(chan struct{})
	)
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			<-start
			l, err := s.AcquireLease(ctx, "payments", string(rune('a'+i)), time.Minute, t0)
			switch {
			case err == nil:
				mu.Lock()
				winners = append(winners, l)
				mu.Unlock()
			case !errors.Is(err, store.ErrLeaseHeld):
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, winners, 1)

	// Tokens grow across services and acquisitions.
	last := winners[0].Token
	now := t0
	for i := range 5 {
		now = now.Add(2 * time.Minute)
		for _, svc := range []string{"payments", "billing"} {
			l, err := s.AcquireLease(ctx, svc, "node", time.Minute, now)
			require.NoError(t, err, "round %d", i)
			require.Greater(t, l.Token, last)
			last = l.Token
		}
	}
}

func TestReleaseLeaseReturnsClaimedEntries(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	a, b := entry("payments", -time.Second), entry("payments", 0)
	insert(t, s, a, b)
	l := lease(t, s, "payments", "node-a")
	claimed, err := s.ClaimBatch(ctx, "payments", l.Token, 2, t0)
	require.NoError(t, err)
	require.Len(t, claimed, 2)
	require.NoError(t, s.Complete(ctx, a.ID, l.Token, t0))

	at := t0.Add(time.Second)
	require.NoError(t, s.ReleaseLease(ctx, "payments", l.Token, at))
	got, err := s.Get(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, domain.DLQPending, got.Status)
	require.Equal(t, at, got.NextAttemptAt)
	got, err = s.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, domain.DLQReplayed, got.Status)
}
