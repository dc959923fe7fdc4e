-- compatibility: contract (the first schema)
--
-- Dead-letter entries (DESIGN §5): the wire fields of a dead letter plus the
-- replay bookkeeping. Optional text fields are stored as '' rather than NULL;
-- optional instants are NULL.
CREATE TABLE dlq_entries (
    id                 uuid        PRIMARY KEY,
    service            text        NOT NULL,
    domain             text        NOT NULL,
    failure_type       text        NOT NULL,
    operation          text        NOT NULL DEFAULT '',
    idempotency_key    text        NOT NULL DEFAULT '',
    entity_type        text        NOT NULL DEFAULT '',
    entity_id          text        NOT NULL DEFAULT '',
    request            jsonb,
    error_code         text        NOT NULL DEFAULT '',
    error_message      text        NOT NULL DEFAULT '',
    priority           text        NOT NULL DEFAULT 'normal',
    -- Replay order: the SQL twin of domain.Priority.Rank (PriorityRankSQL).
    priority_rank      smallint    NOT NULL GENERATED ALWAYS AS (
        CASE priority WHEN 'critical' THEN 0 WHEN 'normal' THEN 1 WHEN 'low' THEN 2 ELSE 3 END
    ) STORED,
    metadata           jsonb,
    status             text        NOT NULL DEFAULT 'pending',
    retry_count        integer     NOT NULL DEFAULT 0,
    max_retries        integer     NOT NULL DEFAULT 2,
    last_retry_at      timestamptz,
    next_attempt_at    timestamptz NOT NULL,
    last_error         text        NOT NULL DEFAULT '',
    error_history      jsonb       NOT NULL DEFAULT '[]',
    resolution_type    text        NOT NULL DEFAULT '',
    resolution_note    text        NOT NULL DEFAULT '',
    recommended_action text        NOT NULL DEFAULT '',
    resolved_at        timestamptz,
    lease_owner        text        NOT NULL DEFAULT '',
    fencing_token      bigint      NOT NULL DEFAULT 0,
    sla_breached_at    timestamptz,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,

    CONSTRAINT dlq_entries_service_check
        CHECK (char_length(service) BETWEEN 1 AND 200),
    CONSTRAINT dlq_entries_domain_check
        CHECK (domain IN ('external_service', 'internal_process', 'async_task',
                          'notification', 'data_sync', 'custom')),
    CONSTRAINT dlq_entries_priority_check
        CHECK (priority IN ('critical', 'normal', 'low')),
    CONSTRAINT dlq_entries_status_check
        CHECK (status IN ('pending', 'replaying', 'replayed', 'requires_review',
                          'reviewing', 'resolved', 'rejected', 'archived', 'expired',
                          'permanently_failed')),
    CONSTRAINT dlq_entries_resolution_type_check
        CHECK (resolution_type IN ('', 'auto_replay', 'manual_fix', 'rejected', 'expired',
                                   'internal_error', 'archived', 'max_retries_exhausted',
                                   'ttl_expired')),
    CONSTRAINT dlq_entries_recommended_action_check
        CHECK (recommended_action IN ('', 'replay', 'manual_check', 'escalate', 'archive')),
    CONSTRAINT dlq_entries_retries_check
        CHECK (retry_count >= 0 AND max_retries >= 0),
    CONSTRAINT dlq_entries_error_history_check
        CHECK (jsonb_typeof(error_history) = 'array')
);

-- Ingest is idempotent on (service, idempotency_key) while an entry is live:
-- a replayed, resolved, rejected, archived, expired or permanently failed
-- entry does not block a new one with the same key.
CREATE UNIQUE INDEX dlq_entries_live_idempotency_key
    ON dlq_entries (service, idempotency_key)
    WHERE idempotency_key <> ''
      AND status IN ('pending', 'replaying', 'requires_review', 'reviewing');

-- Claim path: a service's pending entries in priority order, oldest first.
CREATE INDEX dlq_entries_claim
    ON dlq_entries (service, priority_rank, created_at, id)
    WHERE status = 'pending';

-- Watchdog: replaying entries whose lease expired.
CREATE INDEX dlq_entries_replaying
    ON dlq_entries (service, fencing_token)
    WHERE status = 'replaying';

-- Listing and counts: by service and status, and fleet-wide, in creation order.
CREATE INDEX dlq_entries_service_status_created
    ON dlq_entries (service, status, created_at, id);
CREATE INDEX dlq_entries_status_created
    ON dlq_entries (status, created_at, id);
CREATE INDEX dlq_entries_created
    ON dlq_entries (created_at, id);

-- Retention.
CREATE INDEX dlq_entries_expires
    ON dlq_entries (expires_at);

-- SLA scan: pending entries not yet flagged, by domain and age.
CREATE INDEX dlq_entries_sla
    ON dlq_entries (domain, created_at)
    WHERE status = 'pending' AND sla_breached_at IS NULL;

---- create above / drop below ----

DROP TABLE IF EXISTS dlq_entries;
