-- Times are Unix epoch microseconds (UTC).
-- One row per event whose notifications are done (delivered or
-- dead-lettered): a redelivered message with a row here is a no-op.
CREATE TABLE processed_events (
    event_id     TEXT    PRIMARY KEY,
    processed_us INTEGER NOT NULL
);

CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    order_id    TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    traceparent TEXT,
    occurred_us INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    last_error  TEXT    NOT NULL,
    failed_us   INTEGER NOT NULL
);
