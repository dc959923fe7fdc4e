-- Replay leases: one holder per service; every acquisition takes a new token
-- from the global sequence, so tokens strictly increase.

-- name: AcquireLease :one
-- Takes the service's lease for holder when it is free, expired, or already
-- held by holder; no row when another holder's lease is unexpired.
INSERT INTO replay_leases AS l (service, holder, fencing_token, acquired_at, renewed_at, expires_at)
VALUES (@service, @holder, nextval('replay_lease_fencing_token'), @now, @now, @expires_at)
ON CONFLICT (service) DO UPDATE
SET holder = excluded.holder,
    fencing_token = excluded.fencing_token,
    acquired_at = excluded.acquired_at,
    renewed_at = excluded.renewed_at,
    expires_at = excluded.expires_at
WHERE l.expires_at <= @now OR l.holder = @holder
RETURNING *;

-- name: RenewLease :one
-- Extends the lease while fencing_token is current and unexpired.
UPDATE replay_leases
SET renewed_at = @now, expires_at = @expires_at
WHERE service = @service AND fencing_token = @fencing_token AND expires_at > @now
RETURNING *;

-- name: ReleaseLease :execrows
DELETE FROM replay_leases WHERE service = @service AND fencing_token = @fencing_token;

-- name: GetLease :one
SELECT * FROM replay_leases WHERE service = @service;
