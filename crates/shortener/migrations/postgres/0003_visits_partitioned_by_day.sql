-- Visits become a table partitioned by day: RANGE on visited_at (Unix
-- microseconds, UTC days). Retention then drops whole day partitions instead
-- of deleting rows, and each day's indexes stay small while it is written.
-- A DEFAULT partition takes any visit whose day has no partition, so no
-- write ever fails because of its date. Day partitions (`visits_pYYYYMMDD`)
-- are created ahead and dropped by the module's visit maintenance
-- (src/storage/pg_visit_partitions.rs).
--
-- A partitioned table's primary key must hold the partition key, hence
-- (id, visited_at); ids still come from the same sequence.
--
-- No foreign key to links: its check is a lookup per inserted row and
-- halved the COPY rate (docs/performance.md, "Visit ingest"). What it
-- guaranteed is kept another way: the writer locks the batch's links
-- (FOR KEY SHARE) and writes only visits of links that exist, and the
-- trigger below deletes a link's visits with it, as the cascade did.
--
-- An existing table is kept: it is renamed, every day it holds gets its
-- partition, its rows are copied over and it is dropped, all inside this
-- migration's one transaction.
ALTER TABLE visits RENAME TO visits_unpartitioned;
ALTER TABLE visits_unpartitioned RENAME CONSTRAINT visits_pkey TO visits_unpartitioned_pkey;
ALTER INDEX visits_by_link_time RENAME TO visits_unpartitioned_by_link_time;

CREATE TABLE visits (
    id            BIGINT  NOT NULL DEFAULT nextval('visits_id_seq'),
    link_id       BIGINT  NOT NULL,
    visited_at    BIGINT  NOT NULL,
    referrer_host TEXT,
    client_ip     TEXT,
    user_agent    TEXT,
    is_bot        BOOLEAN NOT NULL,
    PRIMARY KEY (id, visited_at)
) PARTITION BY RANGE (visited_at);
ALTER SEQUENCE visits_id_seq OWNED BY visits.id;
CREATE INDEX visits_by_link_time ON visits (link_id, visited_at);
CREATE TABLE visits_default PARTITION OF visits DEFAULT;

DO $$
DECLARE
    day BIGINT;
BEGIN
    -- Days since the epoch, in exact numeric arithmetic.
    FOR day IN
        SELECT DISTINCT floor(visited_at / 86400000000.0)::BIGINT FROM visits_unpartitioned
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF visits FOR VALUES FROM (%s) TO (%s)',
            'visits_p' || to_char(DATE '1970-01-01' + day::INT, 'YYYYMMDD'),
            day * 86400000000, (day + 1) * 86400000000
        );
    END LOOP;
END
$$;

INSERT INTO visits (id, link_id, visited_at, referrer_host, client_ip, user_agent, is_bot)
SELECT id, link_id, visited_at, referrer_host, client_ip, user_agent, is_bot
FROM visits_unpartitioned;
DROP TABLE visits_unpartitioned;

-- The schema is the deleted link's, whatever the session's search_path.
CREATE FUNCTION delete_visits_of_link() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DELETE FROM %I.visits WHERE link_id = $1', TG_TABLE_SCHEMA) USING OLD.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER links_delete_visits AFTER DELETE ON links
    FOR EACH ROW EXECUTE FUNCTION delete_visits_of_link();
