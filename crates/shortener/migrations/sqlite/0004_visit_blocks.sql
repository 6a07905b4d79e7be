-- Visits stored in blocks (issue 18). The writer appends a batch's visits
-- of one link as one row: a JSON array of
-- [visited_at, referrer_host, client_ip, user_agent, is_bot] entries.
-- A row per visit cost a B-tree insert and seven bound values each, about
-- 4,800 instructions a visit and a fifth of a redirect's CPU.
--
-- Keyed by (link, last visit time, nonce): a link's visits since a time
-- are a range of the key, retention drops whole blocks by last_at, and
-- trimming a block that straddles the cutoff keeps its last visit, so a
-- key never changes. first_at is the earliest visit kept in the block.
CREATE TABLE visit_blocks (
    link_id  INTEGER NOT NULL,
    last_at  INTEGER NOT NULL,
    nonce    INTEGER NOT NULL,
    first_at INTEGER NOT NULL,
    visits   INTEGER NOT NULL,
    data     TEXT    NOT NULL,
    PRIMARY KEY (link_id, last_at, nonce)
) WITHOUT ROWID;

-- Every existing visit becomes a block of one; none is dropped.
INSERT INTO visit_blocks (link_id, last_at, nonce, first_at, visits, data)
SELECT link_id, visited_at, nonce, visited_at, 1,
       json_array(json_array(visited_at, referrer_host, client_ip, user_agent, is_bot))
FROM visits;

DROP TRIGGER links_delete_visits;
DROP TABLE visits;

-- `visits` stays readable, one row per visit, for the tools, exports and
-- queries written against the table (the summary itself decodes blocks
-- in Rust, in one pass).
CREATE VIEW visits (link_id, visited_at, nonce, referrer_host, client_ip, user_agent, is_bot) AS
SELECT b.link_id, e.value ->> 0, b.nonce, e.value ->> 1, e.value ->> 2, e.value ->> 3, e.value ->> 4
FROM visit_blocks AS b, json_each(b.data) AS e;

-- And writable, a visit at a time (seeding, repairs): each one a block.
CREATE TRIGGER visits_insert INSTEAD OF INSERT ON visits
BEGIN
    INSERT OR IGNORE INTO visit_blocks (link_id, last_at, nonce, first_at, visits, data)
    VALUES (NEW.link_id, NEW.visited_at, COALESCE(NEW.nonce, random()), NEW.visited_at, 1,
            json_array(json_array(NEW.visited_at, NEW.referrer_host, NEW.client_ip,
                                  NEW.user_agent, NEW.is_bot)));
END;

CREATE TRIGGER links_delete_visits AFTER DELETE ON links
BEGIN
    DELETE FROM visit_blocks WHERE link_id = OLD.id;
END;
