//! The gateway's histograms, with their handles resolved once per label
//! set: the `metrics` registry lookup hashes and allocates every label on
//! each call, a visible share of a proxied request (kit's observe layer
//! caches for the same reason). Label sets are bounded by config (route
//! and pool names, endpoint addresses) and by status codes and error kinds,
//! none of them chosen by a client. So the maps hash with foldhash:
//! SipHash's resistance to hash flooding buys nothing here, and its two
//! lookups a request were among the gateway's top costs in issue 18's
//! profile.
//!
//! The labels are `&'static str` made once (leaked config names, string
//! literals), so a key is hashed and compared by where its labels are, not
//! by their text (hashing and comparing three strings byte by byte cost
//! ~60 instructions a lookup, two lookups a request). Two copies of one
//! label at two addresses would make two entries for one histogram,
//! which the registry resolves to the same series, so the count stays
//! bounded and right.

use kit::metrics::{latency_histogram, LatencyFamily};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::RwLock;

type Key = (&'static str, &'static str, u16, &'static str);

/// A [`Key`] by the addresses (and lengths) of its labels.
#[derive(Clone, Copy)]
struct ByAddress(Key);

impl PartialEq for ByAddress {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.0, &other.0);
        std::ptr::eq(a.0, b.0) && std::ptr::eq(a.1, b.1) && a.2 == b.2 && std::ptr::eq(a.3, b.3)
    }
}

impl Eq for ByAddress {}

impl Hash for ByAddress {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (a, b, status, c) = self.0;
        for label in [a, b, c] {
            state.write_usize(label.as_ptr() as usize);
            state.write_usize(label.len());
        }
        state.write_u16(status);
    }
}

/// Histograms of one metric name by a 4-part key.
pub(crate) struct Series {
    by_key: RwLock<HashMap<ByAddress, metrics::Histogram, foldhash::fast::RandomState>>,
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
            .get(&ByAddress(key))
        {
            h.record(seconds);
            return;
        }
        let histogram = (self.make)(&key);
        histogram.record(seconds);
        self.by_key
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ByAddress(key), histogram);
    }
}

fn status_label(status: u16) -> String {
    if status == 0 {
        String::new()
    } else {
        status.to_string()
    }
}

/// Kept by kit, as the request path's histograms are
/// ([`kit::metrics::latency_histogram`]).
const REQUESTS: LatencyFamily = LatencyFamily {
    name: "gateway_request_duration_seconds",
    help: "Duration of requests at the gateway, by route, pool and status",
};

const ATTEMPTS: LatencyFamily = LatencyFamily {
    name: "http_client_request_duration_seconds",
    help: "Duration of one upstream attempt of the gateway, by pool, endpoint and status or error",
};

/// `gateway_request_duration_seconds{gateway_route, gateway_pool,
/// http_response_status_code}`: the whole request at the gateway.
pub(crate) fn requests() -> Series {
    Series::new(|(route, pool, status, _)| {
        latency_histogram(
            REQUESTS,
            &[
                ("gateway_route", route),
                ("gateway_pool", pool),
                ("http_response_status_code", &status_label(*status)),
            ],
        )
    })
}

/// `http_client_request_duration_seconds{gateway_pool, server_address,
/// http_response_status_code, error_type}`: one upstream attempt; a failed
/// attempt has no status and its error kind.
pub(crate) fn attempts() -> Series {
    Series::new(|(pool, endpoint, status, error_type)| {
        latency_histogram(
            ATTEMPTS,
            &[
                ("gateway_pool", pool),
                ("server_address", endpoint),
                ("http_response_status_code", &status_label(*status)),
                ("error_type", error_type),
            ],
        )
    })
}
