//! Running one check: HTTP(S), TCP connect or DNS resolve, bounded by the
//! probe's timeout, into one [`Outcome`].
//!
//! A check never panics and never returns an error type: whatever goes
//! wrong (refused, timed out, wrong status, bad certificate) is a failed
//! outcome with a short reason, because that is what a probe reports.

mod http;
mod net;

pub use http::{fetch, Fetched, HttpClient};

use crate::config::{Check, ProbeSpec};
use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

/// The result of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub success: bool,
    /// Why it failed, or what it warns about; empty when all is well.
    pub detail: String,
    /// A success that needs attention (a certificate expiring soon).
    pub warning: bool,
    pub duration: Duration,
    /// The earliest `notAfter` of the peer's certificate chain (HTTPS).
    pub cert_expiry: Option<DateTime<Utc>>,
}

impl Outcome {
    fn failure(detail: impl Into<String>, started: Instant) -> Self {
        Self {
            success: false,
            detail: detail.into(),
            warning: false,
            duration: started.elapsed(),
            cert_expiry: None,
        }
    }
}

/// Runs `spec`'s check once, at most `spec.timeout` long; `now` is the
/// time certificate expiry is measured from.
pub async fn run(spec: &ProbeSpec, client: &HttpClient, now: DateTime<Utc>) -> Outcome {
    let started = Instant::now();
    let checked = tokio::time::timeout(spec.timeout, run_inner(spec, client, now, started)).await;
    match checked {
        Ok(outcome) => outcome,
        Err(_) => Outcome::failure(
            format!("timed out after {}", humanize(spec.timeout)),
            started,
        ),
    }
}

async fn run_inner(
    spec: &ProbeSpec,
    client: &HttpClient,
    now: DateTime<Utc>,
    started: Instant,
) -> Outcome {
    match &spec.check {
        Check::Http(check) => http::check(check, client, now, started).await,
        Check::Tcp(check) => match net::connect(&check.address).await {
            Ok(()) => success(started),
            Err(e) => Outcome::failure(e, started),
        },
        Check::Dns(check) => match net::resolve(&check.name, check.expect).await {
            Ok(()) => success(started),
            Err(e) => Outcome::failure(e, started),
        },
    }
}

fn success(started: Instant) -> Outcome {
    Outcome {
        success: true,
        detail: String::new(),
        warning: false,
        duration: started.elapsed(),
        cert_expiry: None,
    }
}

fn humanize(d: Duration) -> String {
    if d.as_secs() >= 1 && d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
