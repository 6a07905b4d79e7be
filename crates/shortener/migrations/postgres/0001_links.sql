CREATE TABLE links (
    id              BIGSERIAL   PRIMARY KEY,
    slug            TEXT        NOT NULL UNIQUE,
    url             TEXT        NOT NULL,
    redirect_status SMALLINT    NOT NULL DEFAULT 302,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ,
    max_visits      BIGINT,
    visit_count     BIGINT      NOT NULL DEFAULT 0
);

CREATE TABLE link_tags (
    link_id BIGINT NOT NULL REFERENCES links(id) ON DELETE CASCADE,
    tag     TEXT   NOT NULL,
    PRIMARY KEY (link_id, tag)
);
CREATE INDEX link_tags_by_tag ON link_tags(tag, link_id);

CREATE TABLE visits (
    id            BIGSERIAL   PRIMARY KEY,
    link_id       BIGINT      NOT NULL REFERENCES links(id) ON DELETE CASCADE,
    visited_at    TIMESTAMPTZ NOT NULL,
    referrer_host TEXT,
    client_ip     TEXT,
    user_agent    TEXT,
    is_bot        BOOLEAN     NOT NULL
);
CREATE INDEX visits_by_link_time ON visits(link_id, visited_at);
