-- What the platform measured of itself, in 5-minute buckets (the cost
-- module's live measurement, docs/operations/cost.md), kept 35 days.
-- bucket: the bucket's start, Unix microseconds. Labels that do not apply
-- to a kind are ''.
CREATE TABLE cost_usage (
    bucket        BIGINT NOT NULL,
    kind          TEXT    NOT NULL,
    module        TEXT    NOT NULL,
    route         TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    api_key       TEXT    NOT NULL,
    cpu_seconds   DOUBLE PRECISION NOT NULL,
    requests      DOUBLE PRECISION NOT NULL,
    byte_seconds  DOUBLE PRECISION NOT NULL,
    seconds       DOUBLE PRECISION NOT NULL,
    input_tokens  DOUBLE PRECISION NOT NULL,
    output_tokens DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (bucket, kind, module, route, model, api_key)
);
