use crate::cache::LinkCache;
use crate::config::ShortenerConfig;
use crate::domain::TargetPolicy;
use crate::storage::LinkStore;
use crate::visits::VisitRecorder;
use kit::forwarded::TrustedProxies;
use kit::Clock;
use std::sync::Arc;

/// Everything a handler needs, shared by all requests.
pub(crate) struct AppState {
    pub store: Arc<dyn LinkStore>,
    pub cache: LinkCache,
    pub recorder: VisitRecorder,
    pub clock: Arc<dyn Clock>,
    pub config: ShortenerConfig,
    /// `http.trusted_proxies`, as handed over at start.
    pub trusted: TrustedProxies,
    /// Base of short URLs, without a trailing slash.
    pub base_url: String,
    /// What targets are refused beyond malformed ones (loops, private).
    pub targets: TargetPolicy,
    pub metrics: Metrics,
}

/// Metric handles resolved once, so the redirect path skips the registry lookup.
pub(crate) struct Metrics {
    pub cache_hits: metrics::Counter,
    pub cache_misses: metrics::Counter,
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            cache_hits: metrics::counter!("shortener_cache_requests_total", "result" => "hit"),
            cache_misses: metrics::counter!("shortener_cache_requests_total", "result" => "miss"),
        }
    }
}
