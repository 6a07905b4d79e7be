-- Times are Unix epoch microseconds (UTC).
CREATE TABLE orders (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    customer_id TEXT    NOT NULL,
    currency    TEXT    NOT NULL,
    items       TEXT    NOT NULL, -- JSON [{sku, quantity, unit_price_minor}]
    total_minor INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    created_us  INTEGER NOT NULL,
    updated_us  INTEGER NOT NULL
);
CREATE INDEX orders_by_customer ON orders (customer_id, seq);

CREATE TABLE idempotency_keys (
    key             TEXT    PRIMARY KEY,
    fingerprint     TEXT    NOT NULL,
    response_status INTEGER NOT NULL,
    response_body   TEXT    NOT NULL,
    expires_us      INTEGER NOT NULL
);
CREATE INDEX idempotency_by_expiry ON idempotency_keys (expires_us);

CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    order_id     TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    traceparent  TEXT,
    occurred_us  INTEGER NOT NULL,
    published_us INTEGER,
    delivered_us INTEGER
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_us IS NULL;
CREATE INDEX outbox_unpublished_by_order ON outbox (order_id, seq) WHERE published_us IS NULL;
CREATE INDEX outbox_published ON outbox (published_us) WHERE published_us IS NOT NULL;
