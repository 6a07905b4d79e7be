CREATE TABLE items (
    id    BIGSERIAL PRIMARY KEY,
    name  TEXT      NOT NULL UNIQUE,
    note  TEXT
);
CREATE TABLE tags (
    item_id BIGINT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    tag     TEXT   NOT NULL,
    PRIMARY KEY (item_id, tag)
);
