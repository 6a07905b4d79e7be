//! Watching the backends: every backend's `GET <base>/models` is its
//! active health check, and for backends that serve what they list
//! (`backend_url`, `discover = true`) the answer is also the model list.
//! One supervised task runs both on their intervals. Not
//! `resilience::health::run`: that probes each endpoint of fixed pools,
//! while here one probe stands for every deployment on a backend, and the
//! pools change as models are discovered.

use crate::backend::Backend;
use crate::catalog::Catalog;
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Largest `/models` answer read.
const MAX_LIST_BYTES: usize = 1024 * 1024;

/// A backend being watched.
pub struct Watched {
    pub backend: Arc<Backend>,
    /// Its listed models are served under their own names.
    pub discover: bool,
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

/// Why listing a backend's models failed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the call failed: {0}")]
    Call(#[from] resilience::ClientError),
    #[error("answered {0}")]
    Status(http::StatusCode),
    #[error("the answer is not an OpenAI model list")]
    Malformed,
}

/// `GET <base>/models`: the model ids (names that are not sane labels
/// are skipped).
pub async fn list_models(backend: &Backend, timeout: Duration) -> Result<Vec<String>, ListError> {
    let traceparent = kit::trace_context::TraceParent::new_root().header_value();
    let request = backend.request(Method::GET, "/models", None, traceparent);
    let call = async {
        let response = backend.client.send(request).await?;
        if !response.status().is_success() {
            return Err(ListError::Status(response.status()));
        }
        let body: Bytes = Limited::new(response.into_body(), MAX_LIST_BYTES)
            .collect()
            .await
            .map_err(|_| ListError::Malformed)?
            .to_bytes();
        let list: ModelList = serde_json::from_slice(&body).map_err(|_| ListError::Malformed)?;
        Ok(list
            .data
            .into_iter()
            .map(|m| m.id)
            .filter(|id| {
                !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
            })
            .collect())
    };
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or(Err(ListError::Timeout(timeout)))
}

/// Checks (and lists) one backend now.
pub async fn check(watched: &Watched, catalog: &Catalog, timeout: Duration) {
    let backend = &watched.backend;
    match list_models(backend, timeout).await {
        Ok(ids) => {
            catalog.set_backend_health(backend.name, true);
            if watched.discover {
                catalog.set_discovered(backend, &ids);
            }
        }
        Err(e) => {
            tracing::warn!(backend = backend.name, error = %e, "backend check failed");
            catalog.set_backend_health(backend.name, false);
        }
    }
}

/// Runs until `stop`: health checks every `health_interval` (zero: only
/// discovering backends, every `discovery_interval`).
pub async fn watch(
    watched: Vec<Watched>,
    catalog: Arc<Catalog>,
    health_interval: Duration,
    discovery_interval: Duration,
    timeout: Duration,
    stop: CancellationToken,
) {
    let every = if health_interval.is_zero() {
        discovery_interval
    } else {
        health_interval.min(discovery_interval)
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {
                // Concurrently: one slow backend must not delay the others.
                let checks = watched
                    .iter()
                    .filter(|w| w.discover || !health_interval.is_zero())
                    .map(|w| check(w, &catalog, timeout));
                futures::future::join_all(checks).await;
            }
        }
    }
}
