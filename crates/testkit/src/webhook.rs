//! A webhook receiver for notifier tests: an HTTP server on a free
//! loopback port that checks each POST's HMAC-SHA256 signature with the
//! notifier's own receiver-side check (`notifier::channel::verify`, what a
//! real receiver would run) and records the event ids it accepted, in
//! arrival order. It can be told to fail.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Inner {
    secret: String,
    accepted: Mutex<Vec<Accepted>>,
    bad_signatures: Mutex<usize>,
    requests: Mutex<usize>,
    /// Answer this status to the next `n` requests.
    failing: Mutex<Option<(u16, usize)>>,
}

/// One POST the receiver accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub event_id: String,
    pub event_type: String,
    pub body: Bytes,
    /// The request's `traceparent` header, if any.
    pub traceparent: Option<String>,
    pub received_at: std::time::SystemTime,
}

#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
    url: String,
}

impl Receiver {
    /// Starts the receiver on the current Tokio runtime.
    pub async fn start(secret: &str) -> Self {
        Self::serve(secret, false).await
    }

    /// Starts a receiver that answers every request with `Connection:
    /// close`, as receivers behind some load balancers and serverless
    /// endpoints do: each delivery then comes on a connection of its own,
    /// so a fault drawn per connection (a fault proxy's toxicity) is drawn
    /// per delivery.
    pub async fn start_closing(secret: &str) -> Self {
        Self::serve(secret, true).await
    }

    async fn serve(secret: &str, close_connections: bool) -> Self {
        let inner = Arc::new(Inner {
            secret: secret.to_string(),
            ..Default::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind webhook receiver: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("receiver address: {e}"));
        let mut app = Router::new()
            .route("/hook", post(receive))
            .with_state(inner.clone());
        if close_connections {
            app = app.layer(axum::middleware::map_response(
                |mut response: axum::response::Response| async move {
                    response.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                    response
                },
            ));
        }
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            inner,
            url: format!("http://{addr}/hook"),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers `status` to the next `count` requests.
    pub fn fail_next(&self, status: u16, count: usize) {
        *self.inner.failing.lock().unwrap_or_else(|e| e.into_inner()) = Some((status, count));
    }

    /// Event ids accepted, in order, duplicates included.
    pub fn accepted(&self) -> Vec<String> {
        self.deliveries().into_iter().map(|a| a.event_id).collect()
    }

    /// Every accepted POST, in order, duplicates included.
    pub fn deliveries(&self) -> Vec<Accepted> {
        self.inner
            .accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn requests(&self) -> usize {
        *self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub fn bad_signatures(&self) -> usize {
        *self
            .inner
            .bad_signatures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// How many times each accepted id arrived.
    pub fn counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for id in self.accepted() {
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    }

    /// Polls until `done(self)` holds; panics after `limit`.
    pub async fn wait_until(&self, limit: Duration, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        while !done(self) {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "webhook receiver: {what} not reached within {limit:?} ({} accepted)",
                    self.accepted().len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    *inner.requests.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    {
        let mut failing = inner.failing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((status, left)) = failing.as_mut() {
            if *left > 0 {
                *left -= 1;
                return StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            }
        }
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let signature = header(notifier::channel::SIGNATURE_HEADER);
    if notifier::channel::verify(inner.secret.as_bytes(), &body, signature).is_err() {
        *inner
            .bad_signatures
            .lock()
            .unwrap_or_else(|e| e.into_inner()) += 1;
        return StatusCode::UNAUTHORIZED;
    }
    inner
        .accepted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Accepted {
            event_id: header("reliable-event-id").to_string(),
            event_type: header("reliable-event-type").to_string(),
            body,
            traceparent: headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            received_at: std::time::SystemTime::now(),
        });
    StatusCode::NO_CONTENT
}
