-- Canary splits changed at runtime (PUT /admin/v1/routes/{name}/split),
-- read back by every replica. The share is in hundredths of a percent;
-- the two pools say which configuration of the route it was set for, so a
-- route since pointed at other pools ignores the stale row. Times are Unix
-- microseconds (kit::storage::time).
CREATE TABLE route_splits (
    route         TEXT    PRIMARY KEY,
    baseline_pool TEXT    NOT NULL,
    canary_pool   TEXT    NOT NULL,
    basis_points  INTEGER NOT NULL CHECK (basis_points BETWEEN 0 AND 10000),
    updated_at    INTEGER NOT NULL,
    updated_by    TEXT    NOT NULL
);
