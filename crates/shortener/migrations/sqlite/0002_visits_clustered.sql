-- Visits clustered by (link, time) in one B-tree: each recorded visit is
-- one insert, where the first schema paid three (the rowid table, the
-- (link_id, visited_at) index, and the foreign-key lookup in links). Every
-- query on visits reads one link's visits over a time range, which is a
-- range scan of this key. `nonce` only makes the key unique (random per
-- visit; old rows keep their id). A trigger keeps the cascade that the
-- foreign key gave: deleting a link deletes its visits.
CREATE TABLE visits_clustered (
    link_id       INTEGER NOT NULL,
    visited_at    INTEGER NOT NULL,
    nonce         INTEGER NOT NULL,
    referrer_host TEXT,
    client_ip     TEXT,
    user_agent    TEXT,
    is_bot        INTEGER NOT NULL,
    PRIMARY KEY (link_id, visited_at, nonce)
) WITHOUT ROWID;

INSERT INTO visits_clustered (link_id, visited_at, nonce, referrer_host, client_ip, user_agent, is_bot)
SELECT link_id, visited_at, id, referrer_host, client_ip, user_agent, is_bot FROM visits;

DROP TABLE visits;
ALTER TABLE visits_clustered RENAME TO visits;

CREATE TRIGGER links_delete_visits AFTER DELETE ON links
BEGIN
    DELETE FROM visits WHERE link_id = OLD.id;
END;
