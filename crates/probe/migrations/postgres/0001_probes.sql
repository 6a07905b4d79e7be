-- Per probe per UTC day (days since 1970-01-01): checks, successes, and
-- their total duration in microseconds. Kept 90 days.
CREATE TABLE probe_days (
    probe TEXT NOT NULL,
    component TEXT NOT NULL,
    day BIGINT NOT NULL,
    checks BIGINT NOT NULL,
    successes BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    PRIMARY KEY (probe, day)
);

-- Operator-written incident notes; times are Unix microseconds.
CREATE TABLE incidents (
    id BIGSERIAL PRIMARY KEY,
    component TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    author TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL
);
CREATE INDEX incidents_created ON incidents (created_us);
