-- The usage ledger: one row per completed request. Times are Unix
-- microseconds (kit::storage::time); token counts fit BIGINT (larger
-- reported counts are stored as the BIGINT maximum).
CREATE TABLE usage_records (
    id                BIGSERIAL PRIMARY KEY,
    at                BIGINT    NOT NULL,
    api_key           TEXT      NOT NULL,
    model             TEXT      NOT NULL,
    backend           TEXT      NOT NULL,
    prompt_tokens     BIGINT    NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens BIGINT    NOT NULL CHECK (completion_tokens >= 0),
    -- The backend reported no usage; the gateway estimated it.
    estimated         BOOLEAN   NOT NULL,
    -- ok, fallback, client-cancel, backend-error, stream-abort
    outcome           TEXT      NOT NULL
);
CREATE INDEX usage_records_at ON usage_records (at);
CREATE INDEX usage_records_key_at ON usage_records (api_key, at);

-- Batches already written, so a batch retried after a commit whose answer
-- was lost (the server went away during COMMIT) is not written twice.
-- Rows older than a week are deleted by later writes.
CREATE TABLE usage_batches (
    id         TEXT   PRIMARY KEY,
    written_at BIGINT NOT NULL
);
CREATE INDEX usage_batches_written_at ON usage_batches (written_at);
