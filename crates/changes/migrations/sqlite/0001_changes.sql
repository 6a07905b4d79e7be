-- One row per change. AUTOINCREMENT: ids are never reused after pruning,
-- so a page cursor (`before_id`) never points at a newer row.
CREATE TABLE changes (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us   INTEGER NOT NULL, -- when it took effect, Unix microseconds
    kind    TEXT    NOT NULL,
    service TEXT    NOT NULL,
    actor   TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    summary TEXT    NOT NULL
);
CREATE INDEX changes_by_time ON changes(at_us);
CREATE INDEX changes_by_service ON changes(service, id);
