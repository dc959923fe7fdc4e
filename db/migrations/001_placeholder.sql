-- Replaced by the real schema.
SELECT 1;
---- create above / drop below ----
SELECT 1;
