//! The gateway's histograms, with their handles resolved once per label
//! set: the `metrics` registry lookup hashes and allocates every label on
//! each call, a visible share of a proxied request (kit's observe layer
//! caches for the same reason). Label sets are bounded by config (route
//! and pool names, endpoint addresses) and by status codes and error kinds,
//! none of them chosen by a client. So the maps hash with foldhash:
//! SipHash's resistance to hash flooding buys nothing here, and its two
//! lookups a request were among the gateway's top costs in issue 18's
//! profile.

use std::collections::HashMap;
use std::sync::RwLock;

type Key = (&'static str, &'static str, u16, &'static str);

/// Histograms of one metric name by a 4-part key.
pub(crate) struct Series {
    by_key: RwLock<HashMap<Key, metrics::Histogram, foldhash::fast::RandomState>>,
    make: fn(&Key) -> metrics::Histogram,
}

impl Series {
    pub(crate) fn new(make: fn(&Key) -> metrics::Histogram) -> Self {
        Self {
            by_key: RwLock::new(HashMap::default()),
            make,
        }
    }

    pub(crate) fn record(&self, key: Key, seconds: f64) {
        if let Some(h) = self
            .by_key
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            h.record(seconds);
            return;
        }
        let histogram = (self.make)(&key);
        histogram.record(seconds);
        self.by_key
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, histogram);
    }
}

fn status_label(status: u16) -> String {
    if status == 0 {
        String::new()
    } else {
        status.to_string()
    }
}

/// `gateway_request_duration_seconds{gateway_route, gateway_pool,
/// http_response_status_code}`: the whole request at the gateway.
pub(crate) fn requests() -> Series {
    Series::new(|(route, pool, status, _)| {
        metrics::histogram!(
            "gateway_request_duration_seconds",
            "gateway_route" => *route,
            "gateway_pool" => *pool,
            "http_response_status_code" => status_label(*status),
        )
    })
}

/// `http_client_request_duration_seconds{gateway_pool, server_address,
/// http_response_status_code, error_type}`: one upstream attempt; a failed
/// attempt has no status and its error kind.
pub(crate) fn attempts() -> Series {
    Series::new(|(pool, endpoint, status, error_type)| {
        metrics::histogram!(
            "http_client_request_duration_seconds",
            "gateway_pool" => *pool,
            "server_address" => *endpoint,
            "http_response_status_code" => status_label(*status),
            "error_type" => *error_type,
        )
    })
}
