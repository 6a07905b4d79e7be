//! The SQLite visits table was rebuilt clustered by (link, time) in
//! migration 0002: existing visits must survive it, and deleting a link must
//! still delete its visits (a trigger took over from the foreign key).

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

#[tokio::test]
async fn clustering_visits_keeps_every_visit_and_the_cascade() {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite");
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

    sqlx::query("DELETE FROM links WHERE slug = 'a'")
        .execute(&pool)
        .await
        .expect("delete link");
    let left: Vec<i64> = sqlx::query_scalar("SELECT link_id FROM visits")
        .fetch_all(&pool)
        .await
        .expect("visits left");
    assert_eq!(left, vec![2]);
}
