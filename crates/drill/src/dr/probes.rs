//! What "recovered" means, checked from the outside after the restore:
//!
//! - random seeded links redirect to their own URL;
//! - random seeded orders are readable;
//! - the outbox publishes exactly the events that were unpublished at the
//!   snapshot and none that were already published (nothing replayed);
//! - every write acknowledged before the snapshot point is there; those
//!   acknowledged after it are either there or counted as lost (the RPO).

use super::run::DrError;
use super::seed::order_id;
use super::writer::{Ack, Kind};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use kit::storage::{open, Pool, PoolConfig};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::time::Duration;

/// The read probes' results.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadProbes {
    pub links_checked: usize,
    pub links_ok: usize,
    pub orders_checked: usize,
    pub orders_ok: usize,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

/// `count` random seeded links and orders, read through the API.
pub(super) async fn read(base: &str, links: u64, orders: u64, count: usize) -> ReadProbes {
    let http = client();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(17);
    let mut probes = ReadProbes::default();
    for _ in 0..count.min(usize::try_from(links).unwrap_or(usize::MAX)) {
        let i = rng.random_range(1..=links);
        probes.links_checked += 1;
        let response = http.get(format!("{base}/dr-{i}")).send().await;
        let ok = response.is_ok_and(|r| {
            r.status().is_redirection()
                && r.headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .is_some_and(|l| l == format!("https://example.com/dr/{i}"))
        });
        probes.links_ok += usize::from(ok);
    }
    for _ in 0..count.min(usize::try_from(orders).unwrap_or(usize::MAX)) {
        let id = order_id(rng.random_range(1..=orders));
        probes.orders_checked += 1;
        let response = http.get(format!("{base}/api/v1/orders/{id}")).send().await;
        let ok = match response {
            Ok(r) if r.status().is_success() => r
                .json::<serde_json::Value>()
                .await
                .is_ok_and(|body| body["id"] == id.as_str()),
            _ => false,
        };
        probes.orders_ok += usize::from(ok);
    }
    probes
}

/// The orders store, opened directly to watch its outbox.
pub(super) struct Outbox(Pool);

impl Outbox {
    pub(super) async fn open(url: &str) -> Result<Self, DrError> {
        open(url, &PoolConfig::default(), &orders::storage::SCHEMA)
            .await
            .map(Self)
            .map_err(|e| DrError::setup("opening the orders store", e))
    }

    async fn count(&self, sql: &str, since_us: i64) -> Result<i64, DrError> {
        let counted = match &self.0 {
            Pool::Sqlite(p) => {
                sqlx::query_scalar(&sql.replace('$', "?"))
                    .bind(since_us)
                    .fetch_one(p)
                    .await
            }
            Pool::Postgres(p) => sqlx::query_scalar(sql).bind(since_us).fetch_one(p).await,
        };
        counted.map_err(|e| DrError::setup("reading the outbox", e))
    }

    /// Events not yet published.
    pub(super) async fn unpublished(&self) -> Result<i64, DrError> {
        self.count(
            "SELECT COUNT(*) FROM outbox WHERE published_us IS NULL AND $1 >= 0",
            0,
        )
        .await
    }

    /// Events published at or after `since`.
    pub(super) async fn published_since(&self, since: DateTime<Utc>) -> Result<i64, DrError> {
        self.count(
            "SELECT COUNT(*) FROM outbox WHERE published_us >= $1",
            kit::storage::time::to_micros(since),
        )
        .await
    }

    /// Waits (bounded) until the relay published everything.
    pub(super) async fn drained(&self, within: Duration) -> Result<bool, DrError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.unpublished().await? == 0 {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(super) async fn close(self) {
        self.0.close().await;
    }
}

/// The acknowledged writes, after the restore.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WriteAccounting {
    pub acknowledged: usize,
    /// Acknowledged before their module's snapshot point: must be there.
    pub before_snapshot: usize,
    /// Of those, missing: a failed drill.
    pub missing_before_snapshot: usize,
    /// Acknowledged after the snapshot point.
    pub after_snapshot: usize,
    /// Of those, there anyway (committed before the snapshot read began).
    pub after_snapshot_present: usize,
    /// Of those, lost: the RPO in writes.
    pub lost: usize,
    /// From the snapshot point to the last lost write's acknowledgement.
    pub rpo_seconds: f64,
    /// Writes the platform refused or failed (never acknowledged).
    pub write_errors: u64,
    /// Acknowledged writes whose presence could not be read back.
    pub unreadable: usize,
}

/// Looks every acknowledged write up through the API.
pub(super) async fn account(
    base: &str,
    acks: &[Ack],
    links_snapshot: DateTime<Utc>,
    orders_snapshot: DateTime<Utc>,
) -> WriteAccounting {
    let http = client();
    let lookups = futures::stream::iter(acks.iter().map(|ack| {
        let http = http.clone();
        async move {
            let url = match ack.kind {
                Kind::Link => format!("{base}/api/v1/links/{}", ack.id),
                Kind::Order => format!("{base}/api/v1/orders/{}", ack.id),
            };
            let present = match http.get(url).send().await {
                Ok(r) if r.status().is_success() => Some(true),
                Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => Some(false),
                _ => None,
            };
            (ack, present)
        }
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
    let mut accounting = WriteAccounting {
        acknowledged: acks.len(),
        ..WriteAccounting::default()
    };
    let mut last_lost: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    for (ack, present) in lookups {
        let snapshot = match ack.kind {
            Kind::Link => links_snapshot,
            Kind::Order => orders_snapshot,
        };
        let Some(present) = present else {
            accounting.unreadable += 1;
            continue;
        };
        if ack.at < snapshot {
            accounting.before_snapshot += 1;
            accounting.missing_before_snapshot += usize::from(!present);
        } else {
            accounting.after_snapshot += 1;
            if present {
                accounting.after_snapshot_present += 1;
            } else {
                accounting.lost += 1;
                if last_lost.is_none_or(|(at, _)| ack.at > at) {
                    last_lost = Some((ack.at, snapshot));
                }
            }
        }
    }
    if let Some((at, snapshot)) = last_lost {
        accounting.rpo_seconds = (at - snapshot).num_microseconds().unwrap_or(0) as f64 / 1e6;
    }
    accounting
}
