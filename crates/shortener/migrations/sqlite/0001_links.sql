-- Times are Unix epoch milliseconds (UTC).
CREATE TABLE links (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    slug            TEXT    NOT NULL UNIQUE,
    url             TEXT    NOT NULL,
    redirect_status INTEGER NOT NULL DEFAULT 302,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    max_visits      INTEGER,
    visit_count     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE link_tags (
    link_id INTEGER NOT NULL REFERENCES links(id) ON DELETE CASCADE,
    tag     TEXT    NOT NULL,
    PRIMARY KEY (link_id, tag)
);
CREATE INDEX link_tags_by_tag ON link_tags(tag, link_id);

CREATE TABLE visits (
    id            INTEGER PRIMARY KEY,
    link_id       INTEGER NOT NULL REFERENCES links(id) ON DELETE CASCADE,
    visited_at    INTEGER NOT NULL,
    referrer_host TEXT,
    client_ip     TEXT,
    user_agent    TEXT,
    is_bot        INTEGER NOT NULL
);
CREATE INDEX visits_by_link_time ON visits(link_id, visited_at);
