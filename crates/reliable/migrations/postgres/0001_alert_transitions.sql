-- The live SLO evaluator's alert transitions (started / stopped firing),
-- kept 7 days for the console's alert history. Times: Unix microseconds.
CREATE TABLE alert_transitions (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT  NOT NULL,
    name       TEXT    NOT NULL,
    slo_id     TEXT    NOT NULL,
    service    TEXT    NOT NULL,
    condition  TEXT    NOT NULL,
    severity   TEXT    NOT NULL,
    firing     BOOLEAN NOT NULL,
    runbook    TEXT
);
CREATE INDEX alert_transitions_at ON alert_transitions (at);
