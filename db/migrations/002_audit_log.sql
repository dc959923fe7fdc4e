-- compatibility: expand
--
-- Audit log (DESIGN §7.8): every operator action and governance block, in a
-- hash chain. seq is assigned by the writer as the previous seq + 1 while it
-- holds the append lock, so the sequence has no gaps and a deleted row shows.
CREATE TABLE audit_log (
    seq       bigint      PRIMARY KEY,
    at        timestamptz NOT NULL,
    actor     text        NOT NULL,
    action    text        NOT NULL,
    subject   text        NOT NULL DEFAULT '',
    reason    text        NOT NULL DEFAULT '',
    details   jsonb,
    prev_hash bytea       NOT NULL,
    hash      bytea       NOT NULL,

    CONSTRAINT audit_log_seq_check CHECK (seq > 0)
);

CREATE INDEX audit_log_subject ON audit_log (subject, seq);

---- create above / drop below ----

DROP TABLE IF EXISTS audit_log;
