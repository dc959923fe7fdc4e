-- compatibility: expand
--
-- Outcome rollups: per-service, per-minute call counts that feed the error
-- budget (DESIGN §6). minute is truncated to the minute by the writer.
CREATE TABLE outcome_rollups (
    service    text        NOT NULL,
    minute     timestamptz NOT NULL,
    successes  bigint      NOT NULL DEFAULT 0,
    failures   bigint      NOT NULL DEFAULT 0,
    slow_calls bigint      NOT NULL DEFAULT 0,

    PRIMARY KEY (service, minute),
    CONSTRAINT outcome_rollups_counts_check
        CHECK (successes >= 0 AND failures >= 0 AND slow_calls >= 0)
);

CREATE INDEX outcome_rollups_minute ON outcome_rollups (minute);

---- create above / drop below ----

DROP TABLE IF EXISTS outcome_rollups;
