-- Times were Unix milliseconds; every module now stores Unix microseconds
-- (kit::storage::time). Existing keys are converted.
UPDATE api_keys SET
    created_at = created_at * 1000,
    revoked_at = revoked_at * 1000;
