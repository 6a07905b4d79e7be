-- Times are Unix epoch microseconds (UTC).
CREATE TABLE orders (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    customer_id TEXT    NOT NULL,
    currency    TEXT    NOT NULL,
    items       TEXT    NOT NULL, -- JSON [{sku, quantity, unit_price_minor}]
    total_minor BIGINT  NOT NULL,
    status      TEXT    NOT NULL,
    version     BIGINT  NOT NULL,
    created_us  BIGINT  NOT NULL,
    updated_us  BIGINT  NOT NULL
);
CREATE INDEX orders_by_customer ON orders (customer_id, seq);

CREATE TABLE idempotency_keys (
    key             TEXT    PRIMARY KEY,
    fingerprint     TEXT    NOT NULL,
    response_status INTEGER NOT NULL,
    response_body   TEXT    NOT NULL,
    expires_us      BIGINT  NOT NULL
);
CREATE INDEX idempotency_by_expiry ON idempotency_keys (expires_us);

CREATE TABLE outbox (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    order_id     TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    traceparent  TEXT,
    occurred_us  BIGINT  NOT NULL,
    published_us BIGINT,
    delivered_us BIGINT
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_us IS NULL;
CREATE INDEX outbox_unpublished_by_order ON outbox (order_id, seq) WHERE published_us IS NULL;
CREATE INDEX outbox_published ON outbox (published_us) WHERE published_us IS NOT NULL;
