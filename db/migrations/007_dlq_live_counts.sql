-- compatibility: expand
--
-- The live entries of each service (status pending, replaying, requires_review
-- or reviewing: domain.DLQLiveStatusesSQL), for the ingest's per-service bound
-- (replay.IngestConfig.MaxPendingPerService) without counting a service's
-- entries on every batch.
--
-- live is the exact count made at recounted_at plus every entry inserted
-- since: store.InsertEntries adds what it inserts in the same statement (or
-- transaction). Entries that leave the live statuses are not subtracted, so
-- live may run ahead of the truth, never behind it (for inserts made through
-- the store); the ingest recounts a service exactly (holding its row's lock,
-- so that no concurrent insert is lost) when live would pass the bound, when
-- the last recount is older than the ingest allows, and when the service has
-- no row yet. recounted_at is NULL until the first
-- recount.
--
-- Nothing is counted here at migration time: existing services are recounted
-- by the ingest when it first meets them.
CREATE TABLE dlq_live_counts (
    service      text        PRIMARY KEY,
    live         bigint      NOT NULL,
    recounted_at timestamptz
);

-- The recount of a service reads its live entries only: a small index (one
-- deduplicated key per service), kept beside the wider listing index
-- (service, status, created_at, id) so that a recount of a million entries
-- is an index-only scan of a few megabytes.
CREATE INDEX dlq_entries_live_service
    ON dlq_entries (service)
    WHERE status IN ('pending', 'replaying', 'requires_review', 'reviewing');

---- create above / drop below ----

DROP INDEX IF EXISTS dlq_entries_live_service;
DROP TABLE IF EXISTS dlq_live_counts;
