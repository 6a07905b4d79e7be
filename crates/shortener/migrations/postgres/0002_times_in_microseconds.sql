-- Times were TIMESTAMPTZ; every module now stores Unix microseconds (UTC)
-- in BIGINT columns (kit::storage::time). Existing rows are converted.
ALTER TABLE links
    ALTER COLUMN created_at TYPE BIGINT USING ROUND(EXTRACT(EPOCH FROM created_at) * 1000000)::BIGINT,
    ALTER COLUMN updated_at TYPE BIGINT USING ROUND(EXTRACT(EPOCH FROM updated_at) * 1000000)::BIGINT,
    ALTER COLUMN expires_at TYPE BIGINT USING ROUND(EXTRACT(EPOCH FROM expires_at) * 1000000)::BIGINT;

ALTER TABLE visits
    ALTER COLUMN visited_at TYPE BIGINT USING ROUND(EXTRACT(EPOCH FROM visited_at) * 1000000)::BIGINT;
