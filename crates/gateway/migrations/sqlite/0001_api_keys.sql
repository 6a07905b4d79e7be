-- API keys: only the SHA-256 of a key is stored, never the key.
CREATE TABLE api_keys (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT    NOT NULL UNIQUE,
    key_hash       TEXT    NOT NULL UNIQUE,
    display_prefix TEXT    NOT NULL,
    scopes         TEXT    NOT NULL,
    rate           TEXT,
    created_at     INTEGER NOT NULL,
    revoked_at     INTEGER
);
