-- Per probe per UTC day (days since 1970-01-01): checks, successes, and
-- their total duration in microseconds. Kept 90 days.
CREATE TABLE probe_days (
    probe TEXT NOT NULL,
    component TEXT NOT NULL,
    day INTEGER NOT NULL,
    checks INTEGER NOT NULL,
    successes INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    PRIMARY KEY (probe, day)
);

-- Operator-written incident notes; times are Unix microseconds.
CREATE TABLE incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    component TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    author TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL
);
CREATE INDEX incidents_created ON incidents (created_us);
