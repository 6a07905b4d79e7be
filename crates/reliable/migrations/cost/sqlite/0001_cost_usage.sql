-- What the platform measured of itself, in 5-minute buckets (the cost
-- module's live measurement, docs/operations/cost.md), kept 35 days.
-- bucket: the bucket's start, Unix microseconds. Labels that do not apply
-- to a kind are ''.
CREATE TABLE cost_usage (
    bucket        INTEGER NOT NULL,
    kind          TEXT    NOT NULL,
    module        TEXT    NOT NULL,
    route         TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    api_key       TEXT    NOT NULL,
    cpu_seconds   REAL    NOT NULL,
    requests      REAL    NOT NULL,
    byte_seconds  REAL    NOT NULL,
    seconds       REAL    NOT NULL,
    input_tokens  REAL    NOT NULL,
    output_tokens REAL    NOT NULL,
    PRIMARY KEY (bucket, kind, module, route, model, api_key)
);
