//! The writers that keep the platform busy while it is backed up: one
//! creates links, one creates orders, each at a fixed rate through the
//! HTTP API. Every write the platform acknowledged (201) is recorded with
//! the time of its acknowledgement, which is what RPO is counted from.

use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Link,
    Order,
}

/// One acknowledged write: the link's slug or the order's id.
#[derive(Debug, Clone)]
pub(super) struct Ack {
    pub(super) kind: Kind,
    pub(super) id: String,
    pub(super) at: DateTime<Utc>,
}

/// The running writers.
pub(super) struct Writers {
    stop: CancellationToken,
    tracker: TaskTracker,
    acks: Arc<Mutex<Vec<Ack>>>,
    errors: Arc<AtomicU64>,
}

impl Writers {
    /// Starts both writers against `base`, each at `rate` writes/s.
    pub(super) fn start(base: &str, rate: u32) -> Self {
        let writers = Self {
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            acks: Arc::new(Mutex::new(Vec::new())),
            errors: Arc::new(AtomicU64::new(0)),
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        for kind in [Kind::Link, Kind::Order] {
            let write = Writer {
                kind,
                base: base.to_string(),
                client: client.clone(),
                acks: writers.acks.clone(),
                errors: writers.errors.clone(),
            };
            let stop = writers.stop.clone();
            let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
            writers.tracker.spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut n = 0u64;
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    n += 1;
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = write.one(n) => {}
                    }
                }
            });
        }
        writers.tracker.close();
        writers
    }

    /// Writes acknowledged so far.
    pub(super) fn acked(&self) -> usize {
        self.acks.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Stops both writers; every acknowledged write and the count of the
    /// refused or failed ones.
    pub(super) async fn stop(self) -> (Vec<Ack>, u64) {
        self.stop.cancel();
        self.tracker.wait().await;
        let acks = std::mem::take(&mut *self.acks.lock().unwrap_or_else(|e| e.into_inner()));
        (acks, self.errors.load(Ordering::Relaxed))
    }
}

struct Writer {
    kind: Kind,
    base: String,
    client: reqwest::Client,
    acks: Arc<Mutex<Vec<Ack>>>,
    errors: Arc<AtomicU64>,
}

impl Writer {
    async fn one(&self, n: u64) {
        match self.send(n).await {
            Some(id) => {
                let ack = Ack {
                    kind: self.kind,
                    id,
                    at: Utc::now(),
                };
                self.acks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(ack);
            }
            None => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The id of the created link or order, if the platform said 201.
    async fn send(&self, n: u64) -> Option<String> {
        match self.kind {
            Kind::Link => {
                let slug = format!("w-{n}");
                let body = serde_json::json!({
                    "url": format!("https://example.com/w/{n}"),
                    "slug": slug,
                });
                let response = self
                    .client
                    .post(format!("{}/api/v1/links", self.base))
                    .json(&body)
                    .send()
                    .await
                    .ok()?;
                (response.status() == reqwest::StatusCode::CREATED).then_some(slug)
            }
            Kind::Order => {
                let body = serde_json::json!({
                    "customer_id": "dr-writer",
                    "currency": "EUR",
                    "items": [{"sku": "sku-1", "quantity": 1, "unit_price_minor": 500}],
                });
                let response = self
                    .client
                    .post(format!("{}/api/v1/orders", self.base))
                    .header("idempotency-key", format!("dr-w-{n}"))
                    .json(&body)
                    .send()
                    .await
                    .ok()?;
                if response.status() != reqwest::StatusCode::CREATED {
                    return None;
                }
                let created: serde_json::Value = response.json().await.ok()?;
                created["id"].as_str().map(str::to_string)
            }
        }
    }
}
