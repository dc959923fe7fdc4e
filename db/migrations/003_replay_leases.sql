-- compatibility: expand
--
-- Replay leases (DESIGN §5, §7.6): one replayer per service fleet-wide. Every
-- acquisition takes a new fencing token from one global sequence, so tokens
-- strictly increase per service, across releases and expiries.
CREATE SEQUENCE replay_lease_fencing_token AS bigint;

CREATE TABLE replay_leases (
    service       text        PRIMARY KEY,
    holder        text        NOT NULL,
    fencing_token bigint      NOT NULL,
    acquired_at   timestamptz NOT NULL,
    renewed_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,

    CONSTRAINT replay_leases_holder_check CHECK (holder <> ''),
    CONSTRAINT replay_leases_fencing_token_check CHECK (fencing_token > 0)
);

---- create above / drop below ----

DROP TABLE IF EXISTS replay_leases;
DROP SEQUENCE IF EXISTS replay_lease_fencing_token;
