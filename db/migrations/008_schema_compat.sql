-- compatibility: expand
--
-- What each migration means to the releases before it: 'expand' (it only
-- adds — tables, columns with defaults or NULL, indexes — so a binary that
-- knows only the migrations before it runs against the schema unchanged) or
-- 'contract' (it removes or changes something older binaries use: they must
-- not run against it). Every binary records the compatibility of the
-- migrations it knows when it migrates (db.Migrate), so that an older binary
-- started against a newer schema (a rolling upgrade, a rollback) can tell
-- whether it may run: only when every migration above its own is 'expand'.
CREATE TABLE baldur_schema_compat (
    version       integer PRIMARY KEY,
    name          text    NOT NULL,
    compatibility text    NOT NULL CHECK (compatibility IN ('expand', 'contract'))
);

---- create above / drop below ----

DROP TABLE baldur_schema_compat;
