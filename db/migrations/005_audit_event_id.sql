-- compatibility: expand
--
-- Audit records written by the replay-worker's audit consumer carry the
-- ce-id of the event they record, so that a redelivered event is recognised
-- and not appended twice. Records written by the store itself (operator DLQ
-- actions, in the same transaction as the change) have none. event_id is not
-- part of the hash chain: it is a delivery detail, not audited content.
ALTER TABLE audit_log ADD COLUMN event_id uuid;

CREATE UNIQUE INDEX audit_log_event_id ON audit_log (event_id) WHERE event_id IS NOT NULL;

---- create above / drop below ----

DROP INDEX IF EXISTS audit_log_event_id;
ALTER TABLE audit_log DROP COLUMN IF EXISTS event_id;
