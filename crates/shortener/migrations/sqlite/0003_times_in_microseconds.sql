-- Times were Unix milliseconds; every module now stores Unix microseconds
-- (kit::storage::time). Existing rows are converted, none dropped.
UPDATE links SET
    created_at = created_at * 1000,
    updated_at = updated_at * 1000,
    expires_at = expires_at * 1000;

-- visited_at is part of the visits key, so the table is rebuilt rather than
-- updated in place (an in-place update could collide with a row not yet
-- converted). The cascade trigger names the table, so it is dropped and
-- created again around the rebuild.
DROP TRIGGER links_delete_visits;

CREATE TABLE visits_us (
    link_id       INTEGER NOT NULL,
    visited_at    INTEGER NOT NULL,
    nonce         INTEGER NOT NULL,
    referrer_host TEXT,
    client_ip     TEXT,
    user_agent    TEXT,
    is_bot        INTEGER NOT NULL,
    PRIMARY KEY (link_id, visited_at, nonce)
) WITHOUT ROWID;

INSERT INTO visits_us (link_id, visited_at, nonce, referrer_host, client_ip, user_agent, is_bot)
SELECT link_id, visited_at * 1000, nonce, referrer_host, client_ip, user_agent, is_bot FROM visits;

DROP TABLE visits;
ALTER TABLE visits_us RENAME TO visits;

CREATE TRIGGER links_delete_visits AFTER DELETE ON links
BEGIN
    DELETE FROM visits WHERE link_id = OLD.id;
END;
