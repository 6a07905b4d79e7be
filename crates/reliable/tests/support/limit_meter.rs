//! The rate at which several gateways admit requests together, served as
//! JSON for a chaos experiment's `http` probe: what
//! `sum(rate(ratelimit_decisions_total{outcome="allowed"}[2s]))` would
//! give in Prometheus. A global limit holds when this stays at the limit
//! however many gateways share it; it does not depend on the load
//! generator reaching its nominal rate.
//!
//! One task samples every gateway's `/metrics` every 100 ms and serves
//! `GET /` with `{"admitted_per_s": X, "window_s": W}` over the last 2 s;
//! it is aborted when the meter is dropped.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::AbortHandle;

const WINDOW: Duration = Duration::from_secs(2);

pub struct LimitMeter {
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
    tasks: Vec<AbortHandle>,
}

type Samples = Arc<Mutex<VecDeque<(Instant, f64)>>>;

/// Requests allowed so far by the gateway whose metrics are `text`.
fn allowed(text: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with("ratelimit_decisions_total{") && l.contains("outcome=\"allowed\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

impl LimitMeter {
    pub async fn start(metrics: Vec<String>) -> Self {
        let samples: Samples = Arc::default();
        let sampled = samples.clone();
        let sampler = tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let at = Instant::now();
                let mut total = Some(0.0);
                for url in &metrics {
                    let text = match http.get(url).timeout(Duration::from_secs(1)).send().await {
                        Ok(response) => response.text().await.ok(),
                        Err(_) => None,
                    };
                    total = total.zip(text).map(|(sum, text)| sum + allowed(&text));
                }
                // Stamped halfway through the scrapes.
                let at = at + (Instant::now() - at) / 2;
                if let Some(total) = total {
                    let mut samples = sampled.lock().expect("samples");
                    samples.push_back((at, total));
                    while samples.len() > 2 && at - samples[1].0 >= WINDOW {
                        samples.pop_front();
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .abort_handle();
        let app = Router::new().route("/", get(rate)).with_state(samples);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the meter");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move { axum::serve(listener, app).await }).abort_handle();
        Self {
            url,
            tasks: vec![sampler, server],
        }
    }
}

/// The admitted rate over the last [`WINDOW`]; `null` (a probe error)
/// until the samples span it.
async fn rate(State(samples): State<Samples>) -> Json<Value> {
    let samples = samples.lock().expect("samples");
    let (Some(first), Some(last)) = (samples.front(), samples.back()) else {
        return Json(json!({"admitted_per_s": null}));
    };
    let span = (last.0 - first.0).as_secs_f64();
    if span < WINDOW.as_secs_f64() * 0.9 {
        return Json(json!({"admitted_per_s": null, "window_s": span}));
    }
    Json(json!({"admitted_per_s": (last.1 - first.1) / span, "window_s": span}))
}

impl Drop for LimitMeter {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
