//! `reliable load`: an HTTP load generator that does not lie about latency.
//!
//! Most benchmarks run a *closed* model: N connections, each sending its
//! next request when the previous one answers. When the server stalls for
//! 200 ms, such a tool simply stops sending for 200 ms and records one slow
//! request, while real users, who keep arriving whatever the server does,
//! would have seen hundreds. The tool has coordinated with the server to
//! omit exactly the measurements that matter (Gil Tene's "coordinated
//! omission"), and its p99 says the server is fine.
//!
//! So there are two models:
//! - **open** (`rate` set): requests are due at fixed intervals from the
//!   start of the run, whatever the server does, as users arrive. Each
//!   request's latency counts from when it was *due*, not from when a
//!   connection got round to sending it, so a stall shows up in every
//!   request scheduled behind it (the correction wrk2 makes). Requests due
//!   while every connection is busy queue and count their wait; requests
//!   still queued when the run ends are reported as `behind_schedule`, and
//!   the report says the rate was not held rather than showing a flattering
//!   tail.
//! - **closed** (`rate` unset): each connection sends back to back, like
//!   wrk. This finds the maximum throughput; its latencies are service
//!   times, not what users would see.
//!
//! Modules:
//! - `schedule`: when request n is due, and the OS thread that releases
//!   requests on time (the Tokio timer's 1 ms resolution would release
//!   them in bursts).
//! - `connection`: one keep-alive HTTP/1.1 connection (hyper's low-level
//!   client over a `TcpStream`) per task, sending the same request again
//!   and again. Redirects are never followed: a 302 is an answer to count.
//! - `report`: per-connection tallies, merged into an HdrHistogram-backed
//!   [`Report`] that prints as a table and serializes as JSON.
#![forbid(unsafe_code)]

mod connection;
pub mod observe;
pub mod output;
pub mod plan;
mod report;
pub mod results;
pub mod scenario;
mod schedule;
pub mod threshold;

pub use report::{Latency, Report};

use connection::{Connection, RequestTemplate, Window};
use http::{HeaderName, HeaderValue, Method};
use report::{RunShape, Tally};
use schedule::{Dispatched, Schedule};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// `http://` only; every request goes to this URL.
    pub url: Url,
    pub method: Method,
    /// Sent with every request, after `Host`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Requests per second for the open model. `None` runs the closed
    /// model: every connection as fast as the server answers.
    pub rate: Option<f64>,
    /// How long to measure, after the warmup.
    pub duration: Duration,
    /// Load applied before measuring (same rate, nothing recorded), so
    /// caches, connections and the server's allocator settle first.
    pub warmup: Duration,
    /// Keep-alive connections, which is also the most requests in flight.
    /// In the open model, requests due while all are busy wait (and count
    /// the wait), so give it enough for rate x expected latency.
    pub connections: usize,
    /// A request without a complete response after this long is an error;
    /// its connection is replaced.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("only http:// URLs are supported, got `{0}://`")]
    Scheme(String),
    #[error("the URL `{0}` has no host")]
    NoHost(String),
    #[error("the URL path and query do not form a request target: {0}")]
    Target(http::uri::InvalidUri),
    #[error("rate must be a positive, finite number of requests per second, got {0}")]
    Rate(f64),
    #[error("connections must be at least 1")]
    Connections,
    #[error("duration must be longer than zero")]
    Duration,
    #[error("timeout must be longer than zero")]
    Timeout,
    #[error("cannot start the dispatcher thread: {0}")]
    Dispatcher(std::io::Error),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl LoadSpec {
    /// Checks everything that can be checked before connecting.
    fn target(&self) -> Result<(Arc<str>, RequestTemplate), LoadError> {
        if self.url.scheme() != "http" {
            return Err(LoadError::Scheme(self.url.scheme().to_string()));
        }
        let host = self
            .url
            .host_str()
            .ok_or_else(|| LoadError::NoHost(self.url.to_string()))?;
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(LoadError::Rate(rate));
            }
        }
        if self.connections == 0 {
            return Err(LoadError::Connections);
        }
        if self.duration.is_zero() {
            return Err(LoadError::Duration);
        }
        if self.timeout.is_zero() {
            return Err(LoadError::Timeout);
        }
        let port = self.url.port_or_known_default().unwrap_or(80);
        // `host_str` keeps IPv6 brackets, as both `connect` and `Host` want.
        let addr = format!("{host}:{port}");
        let target = match self.url.query() {
            Some(query) => format!("{}?{query}", self.url.path()),
            None => self.url.path().to_string(),
        };
        let template = RequestTemplate {
            method: self.method.clone(),
            uri: target.parse().map_err(LoadError::Target)?,
            host: HeaderValue::from_str(&addr).map_err(|_| LoadError::NoHost(addr.clone()))?,
            headers: self.headers.clone(),
        };
        Ok((addr.into(), template))
    }
}

/// Runs the load and reports what the server did. Fails only if the spec
/// is invalid or the server cannot be reached at the start; errors during
/// the run are counted in the report.
pub async fn run(spec: LoadSpec) -> Result<Report, LoadError> {
    let (addr, template) = spec.target()?;
    let template = Arc::new(template);
    let mut connections = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        let connection = Connection::open(addr.clone(), template.clone())
            .await
            .map_err(|source| LoadError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        connections.push(connection);
    }

    let start = Instant::now();
    let window = Window {
        measure_from: start + spec.warmup,
        end: start + spec.warmup + spec.duration,
        timeout: spec.timeout,
        stop: Arc::new(AtomicBool::new(false)),
    };
    let (jobs_tx, jobs_rx) = flume::unbounded::<Instant>();
    let workers: Vec<_> = connections
        .into_iter()
        .map(|connection| {
            let window = window.clone();
            match spec.rate {
                Some(_) => tokio::spawn(connection.drive_open(jobs_rx.clone(), window)),
                None => tokio::spawn(connection.drive_closed(window)),
            }
        })
        .collect();
    drop(jobs_rx);

    let mut scheduled = None;
    let mut dispatched = Dispatched::default();
    if let Some(rate) = spec.rate {
        let schedule = Schedule::new(start, rate);
        let end = window.end;
        let dispatcher = std::thread::Builder::new()
            .name("load-dispatcher".into())
            .spawn(move || schedule::dispatch(schedule, end, jobs_tx))
            .map_err(|e| {
                window.stop.store(true, Ordering::SeqCst);
                LoadError::Dispatcher(e)
            })?;
        // Joining blocks, so it waits on a blocking-pool thread.
        dispatched = tokio::task::spawn_blocking(move || dispatcher.join().unwrap_or_default())
            .await
            .unwrap_or_default();
        scheduled = Some(schedule.count_between(window.measure_from, window.end));
    } else {
        drop(jobs_tx);
        tokio::time::sleep(window.end.saturating_duration_since(Instant::now())).await;
    }
    // Requests in flight finish (or time out); queued ones are left unsent.
    window.stop.store(true, Ordering::SeqCst);

    let mut tally = Tally::default();
    for worker in workers {
        if let Ok(connection_tally) = worker.await {
            tally.merge(connection_tally);
        }
    }
    let shape = RunShape {
        rate: spec.rate,
        connections: spec.connections,
        duration: spec.duration,
        warmup: spec.warmup,
        scheduled,
        dispatch_lag_max: dispatched.max_lag,
    };
    Ok(Report::new(shape, tally))
}
