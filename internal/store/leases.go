package store

import (
	"context"
	"fmt"
	"time"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store/dbsqlc"
)

// AcquireLease takes the service's replay lease for holder until now + ttl
// and returns it with a fencing token larger than any issued before, for any
// service. It succeeds when the service has no lease, when the lease has
// expired at now, or when holder already holds it (the new token then fences
// off the holder's older one). When another holder's lease is unexpired the
// error wraps ErrLeaseHeld.
func (s *Store) AcquireLease(ctx context.Context, service, holder string, ttl time.Duration, now time.Time) (domain.Lease, error) {
	if err := checkLeaseArgs(service, holder, ttl); err != nil {
		return domain.Lease{}, fmt.Errorf("acquire lease on %s: %w", service, err)
	}
	row, err := s.q.AcquireLease(ctx, dbsqlc.AcquireLeaseParams{
		Service: service, Holder: holder, Now: now, ExpiresAt: now.Add(ttl),
	})
	if isNoRows(err) {
		cur, gerr := s.GetLease(ctx, service)
		if gerr != nil {
			return domain.Lease{}, fmt.Errorf("acquire lease on %s for %s: %w", service, holder, ErrLeaseHeld)
		}
		return domain.Lease{}, fmt.Errorf("acquire lease on %s for %s: %w: %s holds token %d until %s",
			service, holder, ErrLeaseHeld, cur.Holder, cur.Token, cur.ExpiresAt.Format(time.RFC3339Nano))
	}
	if err != nil {
		return domain.Lease{}, fmt.Errorf("acquire lease on %s for %s: %w", service, holder, err)
	}
	return leaseFromRow(row), nil
}

// RenewLease extends the service's lease to now + ttl. token must still be the
// current, unexpired lease at now; otherwise the error wraps ErrLeaseLost and
// the holder must stop writing.
func (s *Store) RenewLease(ctx context.Context, service string, token int64, ttl time.Duration, now time.Time) (domain.Lease, error) {
	if ttl <= 0 {
		return domain.Lease{}, fmt.Errorf("renew lease on %s: %w: ttl %s must be positive", service, ErrInvalidArgument, ttl)
	}
	row, err := s.q.RenewLease(ctx, dbsqlc.RenewLeaseParams{
		Service: service, FencingToken: token, Now: now, ExpiresAt: now.Add(ttl),
	})
	if isNoRows(err) {
		if cerr := s.checkLease(ctx, service, token, now); cerr != nil {
			return domain.Lease{}, fmt.Errorf("renew lease on %s: %w", service, cerr)
		}
		return domain.Lease{}, fmt.Errorf("renew lease on %s: %w: token %d changed concurrently", service, ErrLeaseLost, token)
	}
	if err != nil {
		return domain.Lease{}, fmt.Errorf("renew lease on %s with token %d: %w", service, token, err)
	}
	return leaseFromRow(row), nil
}

// ReleaseLease gives up the service's lease held with token, and in the same
// transaction puts the entries still replaying under token back to pending,
// due at now. Only the lease's own token releases it; any other gets an error
// wrapping ErrLeaseLost and changes nothing.
func (s *Store) ReleaseLease(ctx context.Context, service string, token int64, now time.Time) error {
	released := false
	err := s.inTx(ctx, func(q *dbsqlc.Queries) error {
		n, err := q.ReleaseLease(ctx, dbsqlc.ReleaseLeaseParams{Service: service, FencingToken: token})
		if err != nil || n == 0 {
			return err
		}
		released = true
		_, err = q.ReturnClaimed(ctx, dbsqlc.ReturnClaimedParams{Service: service, FencingToken: token, Now: now})
		return err
	})
	if err != nil {
		return fmt.Errorf("release lease on %s with token %d: %w", service, token, err)
	}
	if !released {
		return fmt.Errorf("release lease on %s: %w: token %d is not the service's lease", service, ErrLeaseLost, token)
	}
	return nil
}

// GetLease returns the service's lease, expired or not, or an error wrapping
// ErrNotFound when it has none.
func (s *Store) GetLease(ctx context.Context, service string) (domain.Lease, error) {
	row, err := s.q.GetLease(ctx, service)
	if isNoRows(err) {
		return domain.Lease{}, fmt.Errorf("lease on %s: %w", service, ErrNotFound)
	}
	if err != nil {
		return domain.Lease{}, fmt.Errorf("lease on %s: %w", service, err)
	}
	return leaseFromRow(row), nil
}

// checkLease returns nil when token is the service's current lease at now,
// else an error wrapping ErrLeaseLost that says why.
func (s *Store) checkLease(ctx context.Context, service string, token int64, now time.Time) error {
	l, err := s.GetLease(ctx, service)
	switch {
	case isNotFound(err):
		return fmt.Errorf("%w: %s has no lease (token %d)", ErrLeaseLost, service, token)
	case err != nil:
		return err
	case l.Token != token:
		return fmt.Errorf("%w: token %d was superseded by token %d of %s", ErrLeaseLost, token, l.Token, l.Holder)
	case !l.Current(now):
		return fmt.Errorf("%w: token %d expired at %s", ErrLeaseLost, token, l.ExpiresAt.Format(time.RFC3339Nano))
	}
	return nil
}

func checkLeaseArgs(service, holder string, ttl time.Duration) error {
	switch {
	case service == "":
		return fmt.Errorf("%w: service is empty", ErrInvalidArgument)
	case holder == "":
		return fmt.Errorf("%w: holder is empty", ErrInvalidArgument)
	case ttl <= 0:
		return fmt.Errorf("%w: ttl %s must be positive", ErrInvalidArgument, ttl)
	}
	return nil
}
