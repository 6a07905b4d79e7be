-- Times were TIMESTAMPTZ; every module now stores Unix microseconds (UTC)
-- in BIGINT columns (kit::storage::time). Existing keys are converted.
ALTER TABLE api_keys
    ALTER COLUMN created_at TYPE BIGINT USING ROUND(EXTRACT(EPOCH FROM created_at) * 1000000)::BIGINT,
    ALTER COLUMN revoked_at TYPE BIGINT USING ROUND(EXTRACT(EPOCH FROM revoked_at) * 1000000)::BIGINT;
