-- Canary runs and their decisions. `active_target` holds the target key
-- while a run is running or paused and is NULL once it finished: the
-- unique index lets at most one unfinished run hold a target, across
-- every controller replica sharing this database.
CREATE TABLE canary_runs (
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    active_target TEXT UNIQUE,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    phase TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX canary_runs_started ON canary_runs (started_at);

CREATE TABLE canary_decisions (
    run_id TEXT NOT NULL REFERENCES canary_runs (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    decision TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
