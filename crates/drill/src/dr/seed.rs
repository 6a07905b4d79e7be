//! Seeding a million links fast: bulk `INSERT ... SELECT` over a generated
//! series, straight into the modules' own tables (opened, and migrated,
//! through their own `Schema`), one transaction per table. Through the
//! HTTP API the same seed would take minutes and measure the API, not the
//! recovery.
//!
//! What is seeded: links `dr-1`..`dr-N` to `https://example.com/dr/<i>`
//! with one visit each; orders `ord_<i as 32 hex digits>` (pending, one
//! line) each with its `orders.created` outbox event already published and
//! delivered, as a steady-state platform has them.

use super::run::DrError;
use kit::storage::{open, Pool, PoolConfig};

/// The seeded order id number `i`.
pub(super) fn order_id(i: u64) -> String {
    format!("ord_{i:032x}")
}

/// Seeds `links` links (and visits) through the shortener's store at
/// `url`, and `orders` orders (and outbox rows) through the orders store.
pub(super) async fn seed(
    shortener_url: &str,
    orders_url: &str,
    links: u64,
    orders: u64,
) -> Result<(), DrError> {
    let now = kit::storage::time::to_micros(chrono::Utc::now());
    let pool = open(
        shortener_url,
        &PoolConfig::default(),
        &shortener::storage::SCHEMA,
    )
    .await
    .map_err(|e| DrError::setup("opening the shortener's store", e))?;
    let n = i64::try_from(links).unwrap_or(i64::MAX);
    let statements: [(&str, &str); 2] = match &pool {
        Pool::Sqlite(_) => [
            (
                "WITH RECURSIVE n(i) AS (SELECT 1 WHERE ?1 > 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
                 INSERT INTO links (slug, url, redirect_status, created_at, updated_at, visit_count) \
                 SELECT 'dr-' || i, 'https://example.com/dr/' || i, 302, ?2, ?2, 1 FROM n",
                "links",
            ),
            (
                "INSERT INTO visits (link_id, visited_at, nonce, referrer_host, client_ip, user_agent, is_bot) \
                 SELECT id, ?2, id, 'example.org', NULL, 'dr-seed', 0 FROM links WHERE ?1 >= 0",
                "visits",
            ),
        ],
        Pool::Postgres(_) => [
            (
                "INSERT INTO links (slug, url, redirect_status, created_at, updated_at, visit_count) \
                 SELECT 'dr-' || i, 'https://example.com/dr/' || i, 302, $2, $2, 1 \
                 FROM generate_series(1, $1::bigint) AS i",
                "links",
            ),
            (
                "INSERT INTO visits (link_id, visited_at, referrer_host, client_ip, user_agent, is_bot) \
                 SELECT id, $2, 'example.org', NULL, 'dr-seed', false FROM links WHERE $1::bigint >= 0",
                "visits",
            ),
        ],
    };
    for (sql, table) in statements {
        execute(&pool, sql, n, now, table).await?;
    }
    pool.close().await;

    let pool = open(orders_url, &PoolConfig::default(), &orders::storage::SCHEMA)
        .await
        .map_err(|e| DrError::setup("opening the orders store", e))?;
    let n = i64::try_from(orders).unwrap_or(i64::MAX);
    let statements: [(&str, &str); 2] = match &pool {
        Pool::Sqlite(_) => [
            (
                "WITH RECURSIVE n(i) AS (SELECT 1 WHERE ?1 > 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
                 INSERT INTO orders (id, customer_id, currency, items, total_minor, status, version, created_us, updated_us) \
                 SELECT printf('ord_%032x', i), 'dr-' || (i % 1000), 'EUR', \
                 '[{\"sku\":\"sku-1\",\"quantity\":1,\"unit_price_minor\":500}]', 500, 'pending', 1, ?2, ?2 FROM n",
                "orders",
            ),
            (
                "INSERT INTO outbox (id, order_id, subject, payload, occurred_us, published_us, delivered_us) \
                 SELECT 'evt_' || substr(id, 5), id, 'orders.created', '{}', ?2, ?2, ?2 FROM orders WHERE ?1 >= 0",
                "outbox",
            ),
        ],
        Pool::Postgres(_) => [
            (
                "INSERT INTO orders (id, customer_id, currency, items, total_minor, status, version, created_us, updated_us) \
                 SELECT 'ord_' || lpad(to_hex(i), 32, '0'), 'dr-' || (i % 1000), 'EUR', \
                 '[{\"sku\":\"sku-1\",\"quantity\":1,\"unit_price_minor\":500}]', 500, 'pending', 1, $2, $2 \
                 FROM generate_series(1, $1::bigint) AS i",
                "orders",
            ),
            (
                "INSERT INTO outbox (id, order_id, subject, payload, occurred_us, published_us, delivered_us) \
                 SELECT 'evt_' || substr(id, 5), id, 'orders.created', '{}', $2, $2, $2 FROM orders WHERE $1::bigint >= 0",
                "outbox",
            ),
        ],
    };
    for (sql, table) in statements {
        execute(&pool, sql, n, now, table).await?;
    }
    pool.close().await;
    Ok(())
}

/// One seeding statement in its own transaction.
async fn execute(pool: &Pool, sql: &str, n: i64, now: i64, table: &str) -> Result<(), DrError> {
    let what = format!("seeding {table}");
    let result = match &pool {
        Pool::Sqlite(p) => sqlx::query(sql)
            .bind(n)
            .bind(now)
            .execute(p)
            .await
            .map(|_| ()),
        Pool::Postgres(p) => sqlx::query(sql)
            .bind(n)
            .bind(now)
            .execute(p)
            .await
            .map(|_| ()),
    };
    result.map_err(|e| DrError::setup(&what, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_order_ids_are_valid_order_ids() {
        assert_eq!(order_id(255), format!("ord_{}ff", "0".repeat(30)));
        assert_eq!(order_id(1).len(), 36);
    }
}
