//! The Prometheus recorder and `/metrics`.
//!
//! One recorder per process (the `metrics` facade is global), installed on
//! first use so that tests which start several apps in one process share it.
//! Process metrics (CPU, RSS, open fds, start time) are collected at scrape
//! time. Names follow the OpenTelemetry semantic conventions in Prometheus
//! form; label values are always bounded.

mod latency;

pub use latency::{latency_histogram, LatencyFamily};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Histogram name for server-side request latency (OTel `http.server.request.duration`).
pub const HTTP_SERVER_REQUEST_DURATION: &str = "http_server_request_duration_seconds";

/// Server-side request latency, kept by kit ([`latency_histogram`]).
pub const HTTP_SERVER_REQUESTS: LatencyFamily = LatencyFamily {
    name: HTTP_SERVER_REQUEST_DURATION,
    help: "Duration of HTTP server requests",
};

/// Latency buckets in seconds: fine-grained below 10 ms (redirects answer in
/// microseconds), 0.3 s for the gateway's latency SLO, and 60 s for the
/// "notification delivered within 60 s" SLO: an SLO threshold must be a
/// bucket bound, or its SLI has no data.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

/// Buckets of histograms named `*_batch_size` (rows per batch).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

struct Recorder {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

static RECORDER: OnceLock<Option<Recorder>> = OnceLock::new();

fn recorder() -> Option<&'static Recorder> {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), LATENCY_BUCKETS)
                .ok()?
                .set_buckets_for_metric(Matcher::Suffix("_batch_size".to_string()), BATCH_BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            let process = metrics_process::Collector::default();
            process.describe();
            spawn_upkeep(handle.clone());
            Some(Recorder { handle, process })
        })
        .as_ref()
}

/// Installs the global recorder if it is not installed yet. Returns false if
/// another recorder was installed by someone else.
pub fn install() -> bool {
    recorder().is_some()
}

/// The `/metrics` body in Prometheus text format.
pub fn render() -> String {
    match recorder() {
        Some(r) => {
            r.process.collect();
            let mut text = r.handle.render();
            latency::render_into(&mut text);
            crate::cpu_cost::counters().render_into(&mut text);
            crate::memory::parts().render_into(&mut text);
            text
        }
        None => String::new(),
    }
}

/// The exporter buffers histogram samples until upkeep folds them into
/// buckets; without it a busy process between scrapes grows without bound.
/// A plain thread, so the recorder works with or without a Tokio runtime.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        eprintln!("metrics upkeep thread could not start: {e}");
    }
}

const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /metrics` in Prometheus text format.
pub fn routes() -> crate::http::Routes {
    crate::http::Routes::new().route("/metrics", axum::routing::get(metrics))
}

/// The OpenAPI document of `/metrics`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(metrics))]
pub struct MetricsApi;

/// Prometheus metrics of the process and every module in it.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "platform",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4.",
        body = String, content_type = "text/plain"))
)]
async fn metrics() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(),
    )
}
