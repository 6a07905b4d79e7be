//! The SQLite visits table was rebuilt clustered by (link, time) in
//! migration 0002, and stored as blocks behind a `visits` view in 0004:
//! existing visits must survive both, deleting a link must still delete
//! its visits (a trigger took over from the foreign key).

use sqlx::sqlite::SqlitePoolOptions;
use sqlx::Row;

/// link_id, visited_at, referrer_host, client_ip, user_agent, is_bot
type VisitRow = (
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
);

const INITIAL: &str = include_str!("../migrations/sqlite/0001_links.sql");
const CLUSTERED: &str = include_str!("../migrations/sqlite/0002_visits_clustered.sql");
const MICROSECONDS: &str = include_str!("../migrations/sqlite/0003_times_in_microseconds.sql");
const BLOCKS: &str = include_str!("../migrations/sqlite/0004_visit_blocks.sql");

async fn memory() -> sqlx::SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite")
}

async fn visit_rows(pool: &sqlx::SqlitePool) -> Vec<VisitRow> {
    sqlx::query(
        "SELECT link_id, visited_at, referrer_host, client_ip, user_agent, is_bot
         FROM visits ORDER BY link_id, visited_at, is_bot",
    )
    .fetch_all(pool)
    .await
    .expect("visits")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
    .collect()
}

/// Deletes link `a`; the link ids of the visits left.
async fn delete_link_a(pool: &sqlx::SqlitePool) -> Vec<i64> {
    sqlx::query("DELETE FROM links WHERE slug = 'a'")
        .execute(pool)
        .await
        .expect("delete link");
    sqlx::query_scalar("SELECT link_id FROM visits ORDER BY link_id")
        .fetch_all(pool)
        .await
        .expect("visits left")
}

#[tokio::test]
async fn clustering_visits_keeps_every_visit_and_the_cascade() {
    let pool = memory().await;
    sqlx::raw_sql(INITIAL).execute(&pool).await.expect("0001");
    sqlx::raw_sql(
        "INSERT INTO links (id, slug, url, created_at, updated_at) VALUES
             (1, 'a', 'https://a.example/', 0, 0), (2, 'b', 'https://b.example/', 0, 0);
         INSERT INTO visits (link_id, visited_at, referrer_host, client_ip, user_agent, is_bot) VALUES
             (1, 10, 'r.example', '192.0.2.0', 'curl/8', 0),
             (1, 10, NULL, NULL, NULL, 1),
             (2, 20, NULL, '2001:db8::', 'Mozilla/5.0', 0);",
    )
    .execute(&pool)
    .await
    .expect("rows before");

    sqlx::raw_sql(CLUSTERED).execute(&pool).await.expect("0002");

    let rows = sqlx::query(
        "SELECT link_id, visited_at, referrer_host, client_ip, user_agent, is_bot
         FROM visits ORDER BY link_id, visited_at, is_bot",
    )
    .fetch_all(&pool)
    .await
    .expect("visits after");
    let got: Vec<VisitRow> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                1,
                10,
                Some("r.example".into()),
                Some("192.0.2.0".into()),
                Some("curl/8".into()),
                false
            ),
            (1, 10, None, None, None, true),
            (
                2,
                20,
                None,
                Some("2001:db8::".into()),
                Some("Mozilla/5.0".into()),
                false
            ),
        ]
    );

    assert_eq!(delete_link_a(&pool).await, vec![2]);
}

#[tokio::test]
async fn visit_blocks_keep_every_visit_behind_a_view_that_reads_and_writes() {
    let pool = memory().await;
    for (name, sql) in [
        ("0001", INITIAL),
        ("0002", CLUSTERED),
        ("0003", MICROSECONDS),
    ] {
        sqlx::raw_sql(sql).execute(&pool).await.expect(name);
    }
    sqlx::raw_sql(
        "INSERT INTO links (id, slug, url, created_at, updated_at) VALUES
             (1, 'a', 'https://a.example/', 0, 0), (2, 'b', 'https://b.example/', 0, 0);
         INSERT INTO visits (link_id, visited_at, nonce, referrer_host, client_ip, user_agent, is_bot) VALUES
             (1, 10, 1, 'r.example', '192.0.2.0', 'say \"hi\", ünï', 0),
             (1, 10, 2, NULL, NULL, NULL, 1),
             (2, 20, 3, NULL, '2001:db8::', 'Mozilla/5.0', 0);",
    )
    .execute(&pool)
    .await
    .expect("rows before");
    let before = visit_rows(&pool).await;
    assert_eq!(before.len(), 3);

    sqlx::raw_sql(BLOCKS).execute(&pool).await.expect("0004");
    assert_eq!(
        visit_rows(&pool).await,
        before,
        "the view shows every visit as it was"
    );
    let blocks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM visit_blocks")
        .fetch_one(&pool)
        .await
        .expect("blocks");
    assert_eq!(blocks, 3, "each visit a block of one");

    // An INSERT into the view still works, as a block of one.
    sqlx::query(
        "INSERT INTO visits (link_id, visited_at, referrer_host, client_ip, user_agent, is_bot)
         VALUES (2, 30, 'x.example', NULL, 'curl/8', 1)",
    )
    .execute(&pool)
    .await
    .expect("insert through the view");
    let after = visit_rows(&pool).await;
    assert_eq!(after.len(), 4);
    assert_eq!(
        after[3],
        (
            2,
            30,
            Some("x.example".into()),
            None,
            Some("curl/8".into()),
            true
        )
    );

    assert_eq!(
        delete_link_a(&pool).await,
        vec![2, 2],
        "the cascade reaches the blocks"
    );
}
